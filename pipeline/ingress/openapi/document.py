"""The OpenAPI 3.1 document, built from a table of operations and the pydantic envelopes.

A body is a pydantic model, or a raw JSON Schema for the foreign formats the compatible
APIs speak; a raw schema may hold models anywhere, each becoming a `$ref` into
`components/schemas`. Requests use a model's validation schema, responses its
serialization schema (pydantic tells the two apart by name where they differ).
"""

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from importlib.metadata import version
from typing import Any, Final, Literal, TypeGuard

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from schemas import ErrorBody

OPENAPI_VERSION: Final = "3.1.0"
REF_TEMPLATE: Final = "#/components/schemas/{model}"
JSON: Final = "application/json"
EVENT_STREAM: Final = "text/event-stream"
# aiohttp's dynamic parts: `{name}` or `{name:regex}`, where the regex may hold `{m,n}`.
_DYNAMIC: Final = re.compile(
    r"\{(?P<name>[_a-zA-Z][_a-zA-Z0-9]*)(?::(?P<regex>(?:[^{}]|\{[^{}]*\})+))?\}"
)

# A body: a pydantic model, or a raw JSON Schema (which may hold models anywhere).
Schema = type[BaseModel] | Mapping[str, Any]
_Resolve = Callable[[Any, JsonSchemaMode], Any]


@dataclass(frozen=True)
class Param:
    """A query, header or path parameter (a path's own parameters need none: strings)."""

    name: str
    where: Literal["query", "header", "path"]
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Stream:
    """A `text/event-stream` body: its events by name, each with the schema of its data."""

    description: str
    events: Mapping[str, Schema]


@dataclass(frozen=True)
class Reply:
    """One response: its status, and its JSON body, its event stream, or both."""

    status: int
    description: str
    body: Schema | None = None
    stream: Stream | None = None


@dataclass(frozen=True)
class Operation:
    """One route as the document shows it; `path` as aiohttp has it (`{name}` a parameter).

    `errors` are the statuses worth naming, each with `error_body`; any other status is
    documented as `default` with it too.
    """

    method: str
    path: str
    summary: str
    replies: tuple[Reply, ...]
    body: Schema | None = None
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    error_body: Schema = ErrorBody


def openapi_path(path: str) -> tuple[str, dict[str, str | None]]:
    """An aiohttp path in OpenAPI's form (regexes dropped), and its parameters' regexes."""
    found = {match["name"]: match["regex"] for match in _DYNAMIC.finditer(path)}
    return _DYNAMIC.sub(lambda match: "{" + match["name"] + "}", path), found


def build_document(operations: Iterable[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations`, every model in `components/schemas`."""
    table = tuple(operations)
    wanted = dict.fromkeys(
        (model, mode) for op in table for schema, mode in _bodies(op) for model in _models(schema)
    )
    refs, defs = models_json_schema(list(wanted), ref_template=REF_TEMPLATE)

    def resolve(node: Any, mode: JsonSchemaMode) -> Any:
        if _is_model(node):
            return refs[(node, mode)]
        if isinstance(node, Mapping):
            return {key: resolve(value, mode) for key, value in node.items()}
        if isinstance(node, list | tuple):
            return [resolve(item, mode) for item in node]
        return node

    paths: dict[str, dict[str, Any]] = {}
    for op in table:
        path, regexes = openapi_path(op.path)
        methods = paths.setdefault(path, {})
        if op.method.lower() in methods:
            raise ValueError(f"{op.method} {op.path} is in the table twice")
        methods[op.method.lower()] = _operation(op, regexes, resolve)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "promptbus",
            "version": version("promptbus"),
            "summary": "An event-driven LLM gateway: sync fast path, async jobs, webhooks.",
        },
        "paths": paths,
        "components": {"schemas": defs.get("$defs", {})},
    }


def _is_model(node: object) -> TypeGuard[type[BaseModel]]:
    return isinstance(node, type) and issubclass(node, BaseModel)


def _models(node: object) -> Iterator[type[BaseModel]]:
    if _is_model(node):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _models(value)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _models(item)


def _bodies(op: Operation) -> Iterator[tuple[Schema, JsonSchemaMode]]:
    if op.body is not None:
        yield op.body, "validation"
    yield op.error_body, "serialization"
    for reply in op.replies:
        if reply.body is not None:
            yield reply.body, "serialization"
        if reply.stream is not None:
            yield from ((schema, "serialization") for schema in reply.stream.events.values())


def _operation(op: Operation, regexes: dict[str, str | None], resolve: _Resolve) -> dict[str, Any]:
    given = {p.name: p for p in op.params if p.where == "path"}
    if unknown := set(given) - set(regexes):
        raise ValueError(f"{op.method} {op.path} has no path parameter {sorted(unknown)}")
    path_params = [given.get(name) or _path_param(name, regex) for name, regex in regexes.items()]
    params = [*path_params, *(p for p in op.params if p.where != "path")]
    responses = {str(reply.status): _reply(reply, resolve) for reply in op.replies}
    error = {JSON: {"schema": resolve(op.error_body, "serialization")}}
    for status in op.errors:
        if str(status) not in responses:
            responses[str(status)] = {"description": HTTPStatus(status).phrase, "content": error}
    responses["default"] = {"description": "Any other error", "content": error}
    out: dict[str, Any] = {"summary": op.summary, "responses": responses}
    if params:
        out["parameters"] = [_param(p) for p in params]
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": resolve(op.body, "validation")}},
        }
    return out


def _path_param(name: str, regex: str | None) -> Param:
    schema = (
        {"type": "string"} if regex is None else {"type": "string", "pattern": f"^(?:{regex})$"}
    )
    return Param(name, "path", schema)


def _param(param: Param) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": param.name,
        "in": param.where,
        "required": param.required or param.where == "path",
        "schema": dict(param.schema),
    }
    if param.description:
        out["description"] = param.description
    return out


def _reply(reply: Reply, resolve: _Resolve) -> dict[str, Any]:
    content: dict[str, Any] = {}
    if reply.body is not None:
        content[JSON] = {"schema": resolve(reply.body, "serialization")}
    if reply.stream is not None:
        # OpenAPI 3.1 cannot type an event stream's events: the stream is a string, and
        # each event's data schema rides in an extension keyed by the event's name.
        content[EVENT_STREAM] = {
            "schema": {"type": "string", "description": reply.stream.description},
            "x-events": resolve(reply.stream.events, "serialization"),
        }
    out: dict[str, Any] = {"description": reply.description}
    if content:
        out["content"] = content
    return out
