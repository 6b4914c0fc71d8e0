"""Reading config/templates/*.toml: one file per template id, holding that template's versions."""

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from typing import Any

from langchain_core.prompts import ChatPromptTemplate

from pipeline.errors import InvalidConfig
from schemas import Role

# The same shapes a request may name (schemas.generate.TemplateRef): anything else could
# never be asked for, so it is refused when the file is read rather than on first use.
_TEMPLATE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_FILE_KEYS = frozenset({"versions"})
_VERSION_KEYS = frozenset({"version", "description", "messages"})
_MESSAGE_KEYS = frozenset({"role", "content"})
# Our roles as LangChain's message types, and back again when rendering.
LANGCHAIN_TYPES = {Role.SYSTEM: "system", Role.USER: "human", Role.ASSISTANT: "ai"}


@dataclass(frozen=True, slots=True, eq=False)
class TemplateVersion:
    """One version of a template: its LangChain prompt, built once, and the variables it takes."""

    id: str
    version: int
    description: str
    variables: tuple[str, ...]
    prompt: ChatPromptTemplate


class _Invalid(ValueError):
    """Raised inside the loader for one problem in a file; the caller names the file."""


def load_directory(directory: Path) -> list[TemplateVersion]:
    """Every version of every template in `directory` (none when it does not exist)."""
    if not directory.is_dir():
        return []
    versions: list[TemplateVersion] = []
    for path in sorted(directory.glob("*.toml")):
        versions.extend(load_file(path))
    return versions


def load_file(path: Path) -> list[TemplateVersion]:
    """The versions one template file holds; InvalidConfig naming the file if it is bad."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        return _template(path.stem, data)
    except (OSError, tomllib.TOMLDecodeError, _Invalid) as exc:
        raise InvalidConfig(f"template file {path}: {exc}") from exc


def _template(template_id: str, data: dict[str, Any]) -> list[TemplateVersion]:
    if not _TEMPLATE_ID.match(template_id):
        raise _Invalid(
            f"the file name is the template id, and {template_id!r} is not one "
            "(lower-case letters, digits, '_', '.', '-'; at most 64)"
        )
    _only(data, _FILE_KEYS, "the file")
    entries = data.get("versions")
    if not isinstance(entries, list) or not entries:
        raise _Invalid("no versions: add at least one [[versions]] table")
    versions: dict[int, TemplateVersion] = {}
    for index, entry in enumerate(entries):
        version = _version(template_id, entry, index)
        if version.version in versions:
            raise _Invalid(f"version {version.version} is defined twice")
        versions[version.version] = version
    return sorted(versions.values(), key=lambda v: v.version)


def _version(template_id: str, entry: object, index: int) -> TemplateVersion:
    if not isinstance(entry, dict):
        raise _Invalid(f"versions[{index}] is not a table")
    number = entry.get("version")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise _Invalid(f"versions[{index}]: 'version' must be an integer of at least 1")
    where = f"version {number}"
    _only(entry, _VERSION_KEYS, where)
    description = entry.get("description")
    if not isinstance(description, str) or not description.strip():
        raise _Invalid(f"{where}: 'description' must be a non-empty string")
    raw = entry.get("messages")
    if not isinstance(raw, list) or not raw:
        raise _Invalid(f"{where}: 'messages' must be a non-empty array of {{role, content}}")
    messages = [_message(item, f"{where}, messages[{i}]") for i, item in enumerate(raw)]
    roles = [role for role, _ in messages]
    if Role.USER not in roles:
        raise _Invalid(f"{where}: there is no user message")
    if roles[-1] is not Role.USER:
        raise _Invalid(f"{where}: the last message must be a user message")
    if Role.SYSTEM in roles[1:]:
        raise _Invalid(f"{where}: a system message may only come first")
    variables: set[str] = set()
    for i, (_, content) in enumerate(messages):
        variables |= placeholders(content, f"{where}, messages[{i}]")
    try:
        prompt = ChatPromptTemplate.from_messages(
            [(LANGCHAIN_TYPES[role], content) for role, content in messages],
            template_format="f-string",
        )
    except (ValueError, KeyError) as exc:
        raise _Invalid(f"{where}: LangChain refused the messages: {exc}") from exc
    if set(prompt.input_variables) != variables:
        raise _Invalid(f"{where}: LangChain reads variables {prompt.input_variables}")
    return TemplateVersion(
        id=template_id,
        version=number,
        description=description.strip(),
        variables=tuple(sorted(variables)),
        prompt=prompt,
    )


def _message(item: object, where: str) -> tuple[Role, str]:
    if not isinstance(item, dict):
        raise _Invalid(f"{where} is not a {{role, content}} table")
    _only(item, _MESSAGE_KEYS, where)
    role, content = item.get("role"), item.get("content")
    # A template is text to fill in: tool turns come from the caller, never from config.
    if role not in {r.value for r in LANGCHAIN_TYPES}:
        raise _Invalid(f"{where}: 'role' must be one of system, user, assistant, not {role!r}")
    if not isinstance(content, str) or not content.strip():
        raise _Invalid(f"{where}: 'content' must be a non-empty string")
    return Role(role), content


def placeholders(text: str, where: str) -> set[str]:
    """The plain `{name}` placeholders in `text`; anything else is refused.

    LangChain's f-string templates refuse attribute and index access, but still let
    `str.format` run conversions (`{x!r}`) and format specs (`{x:>999999999}` builds a
    gigabyte string): only plain names are allowed here.
    """
    try:
        fields = list(Formatter().parse(text))
    except ValueError as exc:
        raise _Invalid(f"{where}: {exc} (write a literal brace as '{{{{' or '}}}}')") from exc
    names = set()
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if not _VARIABLE.match(name) or spec or conversion is not None:
            shown = "{" + name + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            raise _Invalid(
                f"{where}: placeholder {shown!r} is not allowed; use a plain {{name}} "
                "(no attribute or index access, conversion or format spec)"
            )
        names.add(name)
    return names


def _only(table: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _Invalid(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")
