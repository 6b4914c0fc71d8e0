"""Reading config/chains/*.toml: one file per chain id, holding that chain's versions.

Every problem is refused at start-up with the file, the version, the step and the field
named (InvalidConfig), so that a chain that loads can always run.
"""

import re
import tomllib
from pathlib import Path
from typing import Any, Final

from langchain_core.prompts import ChatPromptTemplate
from pydantic import ValidationError

from pipeline.catalog import ModelCatalog
from pipeline.chains.graph import check_graph
from pipeline.chains.spec import (
    INDEX,
    ITEM,
    BranchStep,
    ChainVersion,
    LlmStep,
    MapStep,
    ReduceStep,
    Source,
    Step,
    TransformStep,
)
from pipeline.errors import InvalidConfig, PromptbusError
from pipeline.templates import TemplateCatalog
from pipeline.templates.loader import LANGCHAIN_TYPES, placeholders
from schemas import GenerationParams, Role

_CHAIN_ID: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_SOURCE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z0-9_-]{1,64}){0,4}$")
_FILE_KEYS: Final = frozenset({"versions"})
_VERSION_KEYS: Final = frozenset({"version", "description", "inputs", "output", "steps"})
_STEP_KEYS: Final = {
    "llm": frozenset(
        {"name", "kind", "model", "messages", "template", "inputs", "response_schema", "params"}
    ),
    "map": frozenset({"name", "kind", "over", "step", "max_concurrency"}),
    "branch": frozenset({"name", "kind", "on", "cases", "default"}),
    "reduce": frozenset({"name", "kind", "over", "item_format", "separator"}),
    "transform": frozenset(
        {
            "name",
            "kind",
            "op",
            "input",
            "chunk_chars",
            "overlap_chars",
            "separator",
            "value",
            "fields",
        }
    ),
}
_OPS: Final = ("split", "lines", "join", "pick", "equals", "object")
MAX_CONCURRENCY: Final = 16
MAX_STEPS: Final = 64


class Invalid(ValueError):
    """Raised inside the loader for one problem; the caller adds where it is."""


def load_directory(
    directory: Path, models: ModelCatalog, templates: TemplateCatalog
) -> list[ChainVersion]:
    """Every version of every chain in `directory` (none when it does not exist)."""
    if not directory.is_dir():
        return []
    return [
        version
        for path in sorted(directory.glob("*.toml"))
        for version in load_file(path, models, templates)
    ]


def load_file(path: Path, models: ModelCatalog, templates: TemplateCatalog) -> list[ChainVersion]:
    """The versions one chain file holds; InvalidConfig naming the file if it is bad."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        return _chain(path.stem, data, models, templates)
    except (OSError, ValueError) as exc:  # TOML's errors, the loaders' Invalid
        raise InvalidConfig(f"chain file {path}: {exc}") from exc


def _chain(
    chain_id: str, data: dict[str, Any], models: ModelCatalog, templates: TemplateCatalog
) -> list[ChainVersion]:
    if not _CHAIN_ID.match(chain_id):
        raise Invalid(f"the file name is the chain id, and {chain_id!r} is not one")
    _only(data, _FILE_KEYS, "the file")
    entries = data.get("versions")
    if not isinstance(entries, list) or not entries:
        raise Invalid("no versions: add at least one [[versions]] table")
    versions: dict[int, ChainVersion] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise Invalid(f"versions[{index}] is not a table")
        number = entry.get("version")
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise Invalid(f"versions[{index}]: 'version' must be an integer of at least 1")
        if number in versions:
            raise Invalid(f"version {number} is defined twice")
        try:
            versions[number] = _version(chain_id, number, entry, models, templates)
        except ValueError as exc:  # Invalid, and the graph's problems
            raise Invalid(f"version {number}: {exc}") from exc
    return sorted(versions.values(), key=lambda v: v.version)


def _version(
    chain_id: str,
    number: int,
    entry: dict[str, Any],
    models: ModelCatalog,
    templates: TemplateCatalog,
) -> ChainVersion:
    _only(entry, _VERSION_KEYS, "the version")
    description = entry.get("description")
    if not isinstance(description, str) or not description.strip():
        raise Invalid("'description' must be a non-empty string")
    inputs = entry.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise Invalid("'inputs' must be an array of names")
    for name in inputs:
        _name(name, "inputs")
    raw_steps = entry.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps or len(raw_steps) > MAX_STEPS:
        raise Invalid(f"'steps' must be an array of 1 to {MAX_STEPS} [[versions.steps]] tables")
    steps: dict[str, Step] = {}
    for index, raw in enumerate(raw_steps):
        if not isinstance(raw, dict):
            raise Invalid(f"steps[{index}] is not a table")
        name = raw.get("name")
        where = f"step {name!r}" if isinstance(name, str) else f"steps[{index}]"
        try:
            step = _step(raw, models, templates)
        except Invalid as exc:
            raise Invalid(f"{where}: {exc}") from exc
        if step.name in steps or step.name in inputs or step.name in (ITEM, INDEX):
            raise Invalid(f"{where}: the name is taken (by a step, an input, item or index)")
        steps[step.name] = step
    output = entry.get("output")
    if not isinstance(output, str) or output not in steps:
        raise Invalid(f"'output' must name one of the steps, not {output!r}")
    chain = ChainVersion(chain_id, number, description.strip(), tuple(inputs), output, steps)
    check_graph(chain)
    return chain


def _step(raw: dict[str, Any], models: ModelCatalog, templates: TemplateCatalog) -> Step:
    name = _name(raw.get("name"), "name")
    kind = raw.get("kind")
    if kind not in _STEP_KEYS:
        raise Invalid(f"'kind' must be one of {', '.join(_STEP_KEYS)}, not {kind!r}")
    _only(raw, _STEP_KEYS[kind], f"a {kind} step")
    match kind:
        case "llm":
            return _llm(name, raw, models, templates)
        case "map":
            concurrency = raw.get("max_concurrency", 4)
            if not _whole(concurrency, 1, MAX_CONCURRENCY):
                raise Invalid(f"'max_concurrency' must be 1 to {MAX_CONCURRENCY}")
            return MapStep(name, _source(raw, "over"), _name(raw.get("step"), "step"), concurrency)
        case "branch":
            cases = raw.get("cases")
            if not isinstance(cases, dict) or not cases:
                raise Invalid("'cases' must be a table of value = step name")
            routed = {str(k).strip().lower(): _name(v, f"cases.{k}") for k, v in cases.items()}
            return BranchStep(
                name, _source(raw, "on"), routed, _name(raw.get("default"), "default")
            )
        case "reduce":
            item_format = _text(raw, "item_format", "{item}")
            unknown = placeholders(item_format, "'item_format'") - {ITEM, INDEX}
            if unknown:
                raise Invalid(f"'item_format' may only use {{item}} and {{index}}, not {unknown}")
            return ReduceStep(
                name, _source(raw, "over"), item_format, _text(raw, "separator", "\n\n")
            )
        case _:
            return _transform(name, raw)


def _llm(
    name: str, raw: dict[str, Any], models: ModelCatalog, templates: TemplateCatalog
) -> LlmStep:
    model = raw.get("model")
    if not isinstance(model, str):
        raise Invalid("'model' must name a model or route of config/models.toml")
    try:
        models.route(model)
    except PromptbusError as exc:
        raise Invalid(f"'model': {exc.message}") from exc
    prompt, template = _prompt(raw, templates)
    mapping = raw.get("inputs", {})
    if not isinstance(mapping, dict):
        raise Invalid("'inputs' must be a table of placeholder = source")
    unknown = sorted(set(mapping) - set(prompt.input_variables))
    if unknown:
        raise Invalid(f"'inputs' names {unknown}, which the prompt does not use")
    inputs = {
        variable: _source(mapping, variable) if variable in mapping else Source(variable)
        for variable in prompt.input_variables
    }
    schema = raw.get("response_schema")
    if schema is not None and not isinstance(schema, dict):
        raise Invalid("'response_schema' must be a table (a JSON Schema)")
    params = raw.get("params")
    if params is not None:
        try:
            GenerationParams.model_validate(params)
        except ValidationError as exc:
            raise Invalid(f"'params': {exc.errors(include_url=False)[0]['msg']}") from exc
    return LlmStep(name, model, prompt, inputs, schema, params, template)


def _prompt(
    raw: dict[str, Any], templates: TemplateCatalog
) -> tuple[ChatPromptTemplate, tuple[str, int] | None]:
    messages, ref = raw.get("messages"), raw.get("template")
    if (messages is None) == (ref is None):
        raise Invalid("give 'messages' or 'template', one of the two")
    if ref is not None:
        ref = {"id": ref} if isinstance(ref, str) else ref
        if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
            raise Invalid("'template' must be an id or a table {id, version}")
        try:
            found = templates.get(ref["id"], ref.get("version"))
        except PromptbusError as exc:
            raise Invalid(f"'template': {exc.message}") from exc
        return found.prompt, (found.id, found.version)
    if not isinstance(messages, list) or not messages:
        raise Invalid("'messages' must be a non-empty array of {role, content}")
    pairs = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise Invalid(f"{where} must be a table of exactly role and content")
        role, content = message["role"], message["content"]
        if role not in {r.value for r in LANGCHAIN_TYPES} or not isinstance(content, str):
            raise Invalid(f"{where}: role system, user or assistant and a text content")
        placeholders(content, where)
        pairs.append((LANGCHAIN_TYPES[Role(role)], content))
    if pairs[-1][0] != "human":
        raise Invalid("the last message must be a user message")
    return ChatPromptTemplate.from_messages(pairs, template_format="f-string"), None


def _transform(name: str, raw: dict[str, Any]) -> TransformStep:
    op = raw.get("op")
    if op not in _OPS:
        raise Invalid(f"'op' must be one of {', '.join(_OPS)}, not {op!r}")
    if op == "object":
        fields = raw.get("fields")
        if not isinstance(fields, dict) or not fields:
            raise Invalid("'fields' must be a table of key = source (or a literal non-text)")
        built: dict[str, Source | bool | int | float] = {}
        for key, value in fields.items():
            if isinstance(value, bool | int | float):
                built[key] = value
            else:
                built[key] = _source(fields, key)
        return TransformStep(name, "object", fields=built)
    source = _source(raw, "input")
    if op == "split":
        chunk = raw.get("chunk_chars", 2000)
        overlap = raw.get("overlap_chars", 200)
        if not _whole(chunk, 100, 100_000) or not _whole(overlap, 0, chunk // 2):
            raise Invalid("'chunk_chars' must be 100 to 100000, 'overlap_chars' 0 to half of it")
        return TransformStep(name, "split", source, chunk_chars=chunk, overlap_chars=overlap)
    if op == "equals":
        value = raw.get("value")
        if not isinstance(value, str):
            raise Invalid("'value' must be the text to compare with")
        return TransformStep(name, "equals", source, value=value.strip().lower())
    if op == "join":
        return TransformStep(name, "join", source, separator=_text(raw, "separator", "\n\n"))
    return TransformStep(name, op, source)


def _source(table: dict[str, Any], key: str) -> Source:
    value = table.get(key)
    if not isinstance(value, str) or not _SOURCE.match(value):
        raise Invalid(f"'{key}' must name a value: an input or step, optionally .field")
    return Source.parse(value)


def _name(value: object, key: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise Invalid(f"'{key}' must be a name (letters, digits, '_'), not {value!r}")
    return value


def _text(table: dict[str, Any], key: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise Invalid(f"'{key}' must be a string")
    return value


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _only(table: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise Invalid(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")
