"""Structured output: the model's JSON answer checked against the request's schema.

A request with a `response_schema` gets the provider's JSON mode; the answer is then
parsed and validated here. An invalid answer gets exactly one repair call (the model sees
its answer and what was wrong with it); a second invalid answer is an InvalidModelOutput.
"""

import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final, NoReturn
from urllib.parse import unquote

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from referencing.exceptions import Unresolvable

from pipeline.errors import InvalidModelOutput, ValidationFailed
from schemas import Message, Role, Usage
from schemas.generate import MAX_TEXT_CHARS
from schemas.stages import Generation

MAX_SCHEMA_BYTES: Final = 64 * 1024
MAX_SCHEMA_DEPTH: Final = 32
# Keywords whose values are data, not subschemas: a "$ref" key inside them is not a ref.
_DATA_KEYWORDS: Final = frozenset({"const", "enum", "default", "examples"})
# A code fence round the whole answer, with an optional language tag: ```json\n{...}\n```
_FENCE: Final = re.compile(r"^\s*```(?:[A-Za-z]+\s)?\s*(.*?)\s*```\s*$", re.DOTALL)
_MAX_REASON: Final = 300

Call = Callable[[tuple[Message, ...]], Awaitable[Generation]]


class InvalidAnswer(Exception):
    """Raised when a model's answer is not JSON matching the schema; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_schema(schema: dict[str, Any], field: str = "response_schema") -> None:
    """Refuse a JSON Schema that is itself invalid or past the bounds (a 422 naming `field`)."""
    if not isinstance(schema, dict):
        _refuse(field, "must be a JSON object")
    try:
        size = len(orjson.dumps(schema))
    except TypeError as exc:
        _refuse(field, f"is not JSON: {exc}")
    if size > MAX_SCHEMA_BYTES:
        _refuse(field, f"is {size} bytes serialized, over the limit of {MAX_SCHEMA_BYTES}")
    depth = _depth(schema)
    if depth > MAX_SCHEMA_DEPTH:
        _refuse(field, f"nests {depth} levels deep, over the limit of {MAX_SCHEMA_DEPTH}")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        _refuse(field, f"is not a valid JSON Schema (2020-12): {exc.message} at {exc.json_path}")
    for ref in _refs(schema):
        if not ref.startswith("#"):
            _refuse(field, f"$ref {ref!r} points outside the schema; only '#...' refs are allowed")
        if ref.startswith("#/") and not _resolves(schema, ref[1:]):
            _refuse(field, f"$ref {ref!r} does not resolve within the schema")


def parse_answer(text: str, schema: dict[str, Any]) -> Any:
    """The JSON value in `text` (a ```json fence removed), validated against `schema`."""
    fenced = _FENCE.match(text)
    body = fenced.group(1) if fenced else text
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidAnswer(_clip(f"the answer is not valid JSON: {exc}")) from exc
    try:
        error = best_match(Draft202012Validator(schema).iter_errors(value))
    except Unresolvable as exc:
        # check_schema catches the refs it can see; this is the schema's fault, not the model's.
        raise ValidationFailed(
            f"response_schema has a $ref that does not resolve: {exc}", field="response_schema"
        ) from exc
    if error is not None:
        raise InvalidAnswer(_clip(f"at {error.json_path}: {error.message}"))
    return value


def repair_conversation(
    conversation: tuple[Message, ...], bad_text: str, error: str
) -> tuple[Message, ...]:
    """The conversation, the model's bad answer, and a request for corrected JSON only."""
    answer = bad_text[:MAX_TEXT_CHARS] if bad_text.strip() else "(an empty answer)"
    ask = (
        f"That answer is not valid: {error}. Reply again with only the corrected JSON, "
        "matching the required JSON Schema, and no other text."
    )
    return (
        *conversation,
        Message(role=Role.ASSISTANT, content=answer),
        Message(role=Role.USER, content=ask),
    )


async def structured_answer(
    call: Call, conversation: tuple[Message, ...], schema: dict[str, Any]
) -> Generation:
    """The answer with its parsed JSON; one repair call if the first answer is invalid.

    An answer with no text at all (a blocked or empty one) comes back unparsed, so the
    generate stage reports it as blocked or empty rather than as invalid output.
    """
    first = await call(conversation)
    if not first.text.strip():
        return first
    try:
        return first.model_copy(update={"json_": parse_answer(first.text, schema)})
    except InvalidAnswer as exc:
        problem = exc.reason
    second = await call(repair_conversation(conversation, first.text, problem))
    combined = {
        "usage": _sum(first.usage, second.usage),
        "latency_ms": round(first.latency_ms + second.latency_ms, 3),
    }
    try:
        value = parse_answer(second.text, schema)
    except InvalidAnswer as exc:
        raise InvalidModelOutput(
            f"the model's answer does not match the response schema, even after a repair: "
            f"{exc.reason}",
            finish_reason=second.finish_reason,
        ) from exc
    return second.model_copy(update={**combined, "json_": value})


def _refuse(field: str, reason: str) -> NoReturn:
    raise ValidationFailed(f"{field} {reason}", field=field)


def _depth(value: Any) -> int:
    """How deeply objects and arrays nest in `value` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        )
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def _refs(schema: Any) -> Iterator[str]:
    """Every `$ref` string in the schema, skipping keywords that hold data."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            for key, child in node.items():
                if key == "$ref" and isinstance(child, str):
                    yield child
                elif key not in _DATA_KEYWORDS:
                    stack.append(child)


def _resolves(schema: dict[str, Any], pointer: str) -> bool:
    """Whether the JSON Pointer (RFC 6901, URI-encoded) names a value in `schema`."""
    node: Any = schema
    for token in pointer.split("/")[1:]:
        key = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return False
    return True


def _sum(first: Usage, second: Usage) -> Usage:
    return Usage(
        input_tokens=first.input_tokens + second.input_tokens,
        output_tokens=first.output_tokens + second.output_tokens,
        total_tokens=first.total_tokens + second.total_tokens,
    )


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."
