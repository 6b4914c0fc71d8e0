"""JSON documents built deterministically from a JSON Schema: valid ones and invalid ones."""

import math
from collections.abc import Callable
from typing import Any, Final

from pipeline.emulator.state import BadRequest, Json

# Optional properties are filled in down to this depth; required ones at any depth.
_OPTIONAL_DEPTH: Final = 4
_MAX_DEPTH: Final = 32
_FORMATS: Final[dict[str, Callable[[int], str]]] = {
    "date": lambda i: f"2024-01-{1 + i % 28:02d}",
    "date-time": lambda i: f"2024-01-{1 + i % 28:02d}T12:00:00Z",
    "time": lambda i: f"12:{i % 60:02d}:00Z",
    "email": lambda i: f"user{i}@example.com",
    "uri": lambda i: f"https://example.com/{i}",
    "uuid": lambda i: f"00000000-0000-4000-8000-{i:012d}",
}
_TYPE_NAMES: Final[dict[type, str]] = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}
# Values of every JSON type, in the order tried when a document must have a wrong type.
_WRONG_VALUES: Final[tuple[Any, ...]] = (12345, "invalid", ["invalid"], {"invalid": True})


def json_type(value: Any) -> str:
    """Return the JSON Schema type name of a JSON value."""
    return _TYPE_NAMES[type(value)]


def _declared_types(schema: Json) -> list[str]:
    """Return the types a schema names (`type` as a string or a list)."""
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    return [k for k in kind if isinstance(k, str)] if isinstance(kind, list) else []


def _allows(types: list[str], value: Any) -> bool:
    """Whether a value's JSON type is among the given types (integers are numbers)."""
    kind = json_type(value)
    return kind in types or (kind == "integer" and "number" in types)


class _Builder:
    """Builds documents for one root schema, resolving its local `$ref`s."""

    def __init__(self, root: Json, text: str) -> None:
        self.root = root
        self.text = text

    def deref(self, schema: Any, depth: int = 0) -> Any:
        """Follow `$ref`s (`#/$defs/...`, `#/definitions/...`, any local pointer)."""
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            if depth > _MAX_DEPTH:
                raise BadRequest("response schema: $ref chain too deep")
            ref: str = schema["$ref"]
            if not ref.startswith("#"):
                raise BadRequest(f"response schema: only local $ref is supported: {ref!r}")
            target: Any = self.root
            for part in filter(None, ref[1:].split("/")):
                key = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or key not in target:
                    raise BadRequest(f"response schema: unresolvable $ref {ref!r}")
                target = target[key]
            schema, depth = target, depth + 1
        return schema

    def value(self, schema: Any, depth: int = 0, variant: int = 0) -> Any:
        """Return a value valid against schema; variant makes sibling array items differ."""
        if depth > _MAX_DEPTH:
            raise BadRequest("response schema: too deeply nested")
        schema = self.deref(schema, depth)
        if not isinstance(schema, dict):
            return self.text  # `true` or an unknown shape: anything goes
        if "const" in schema:
            return schema["const"]
        if isinstance(enum := schema.get("enum"), list) and enum:
            return enum[0]
        for key in ("anyOf", "oneOf"):
            if isinstance(branches := schema.get(key), list) and branches:
                return self.value(branches[0], depth + 1, variant)
        if isinstance(parts := schema.get("allOf"), list):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in parts:
                part = self.deref(part, depth)
                if isinstance(part, dict):
                    props = {**merged.get("properties", {}), **part.get("properties", {})}
                    required = [*merged.get("required", []), *part.get("required", [])]
                    merged = {**merged, **part, "properties": props, "required": required}
            return self.value(merged, depth + 1, variant)
        kinds = [k for k in _declared_types(schema) if k != "null"] or _declared_types(schema)
        kind = kinds[0] if kinds else self._implied_type(schema)
        build = getattr(self, f"_{kind}", None)
        if build is None:
            raise BadRequest(f"response schema: unknown type {kind!r}")
        return build(schema, depth, variant)

    def broken(self, schema: Any, depth: int = 0) -> Any:
        """Return a value that schema rejects (if it rejects anything at all)."""
        if depth > _MAX_DEPTH:
            raise BadRequest("response schema: too deeply nested")
        schema = self.deref(schema, depth)
        if not isinstance(schema, dict):
            return "invalid"
        if isinstance(parts := schema.get("allOf"), list) and parts:
            return self.broken(parts[0], depth + 1)  # breaking one part breaks the whole
        types = _declared_types(schema)
        for key in ("anyOf", "oneOf"):
            if isinstance(branches := schema.get(key), list) and branches:
                types += [t for b in branches for t in _declared_types(self.deref(b, depth))]
        required = [name for name in schema.get("required") or [] if isinstance(name, str)]
        if required and (not types or "object" in types):
            document = self.value(schema, depth)
            if isinstance(document, dict):
                document.pop(required[0], None)
                return document
        if isinstance(enum := schema.get("enum"), list) or "const" in schema:
            allowed = enum if isinstance(enum, list) else [schema["const"]]
            return next(v for v in ("<not allowed>", 0) if v not in allowed)
        if types:
            return next((v for v in _WRONG_VALUES if not _allows(types, v)), "invalid")
        if isinstance(properties := schema.get("properties"), dict) and properties:
            name, sub = next(iter(properties.items()))
            return {name: self.broken(sub, depth + 1)}
        return "invalid"  # an unconstrained schema cannot be broken

    @staticmethod
    def _implied_type(schema: Json) -> str:
        """Guess the type of a schema that names none."""
        if {"properties", "required", "additionalProperties"} & schema.keys():
            return "object"
        if {"items", "prefixItems"} & schema.keys():
            return "array"
        return "string"

    def _object(self, schema: Json, depth: int, variant: int) -> Json:
        properties = schema.get("properties") or {}
        required = [name for name in schema.get("required") or [] if isinstance(name, str)]
        names = list(properties) if depth < _OPTIONAL_DEPTH else []
        names += [name for name in required if name not in names]
        extra = schema.get("additionalProperties")
        return {
            name: self.value(
                properties.get(name, extra if isinstance(extra, dict) else {}), depth + 1
            )
            for name in names
        }

    def _array(self, schema: Json, depth: int, variant: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", {})
        count = max(
            int(schema.get("minItems", 0)), len(prefix), 0 if depth >= _OPTIONAL_DEPTH else 1
        )
        if items is False or "maxItems" in schema:
            limit = len(prefix) if items is False else int(schema["maxItems"])
            count = min(count, limit)
        return [
            self.value(prefix[i] if i < len(prefix) else items, depth + 1, i) for i in range(count)
        ]

    def _string(self, schema: Json, depth: int, variant: int) -> str:
        fmt = schema.get("format")
        text = _FORMATS[fmt](variant) if fmt in _FORMATS else self.text
        if variant and fmt not in _FORMATS:
            text = f"{text} {variant}"
        text += "x" * max(0, int(schema.get("minLength", 0)) - len(text))
        if "maxLength" in schema:
            text = text[: int(schema["maxLength"])]
        return text

    def _integer(self, schema: Json, depth: int, variant: int) -> int:
        low, high = _bounds(schema, 1)
        value = 1 + variant
        if low is not None and value < low:
            value = math.ceil(low) + variant
        if high is not None and value > high:
            value = math.floor(high)
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0 and value % step:
            value = math.ceil(value / step) * step
            if high is not None and value > high:
                value -= step
        return value

    def _number(self, schema: Json, depth: int, variant: int) -> float:
        low, high = _bounds(schema, 1e-6)
        value = 1.5 + variant
        if low is not None and high is not None and not low <= value <= high:
            return (low + high) / 2
        if low is not None and value < low:
            return low + 1
        if high is not None and value > high:
            return high - 1
        return value

    def _boolean(self, schema: Json, depth: int, variant: int) -> bool:
        return variant % 2 == 0

    def _null(self, schema: Json, depth: int, variant: int) -> None:
        return None


def _number_or_none(value: Any) -> float | None:
    """Return a bound as a float (booleans are not bounds)."""
    return float(value) if json_type(value) in ("integer", "number") else None


def _bounds(schema: Json, step: float) -> tuple[float | None, float | None]:
    """Return inclusive bounds; exclusive ones move inwards by step (1 for integers)."""
    low, high = _number_or_none(schema.get("minimum")), _number_or_none(schema.get("maximum"))
    ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    # Draft 4 spells an exclusive bound as a boolean beside minimum/maximum.
    if ex_low is True and low is not None:
        ex_low = low
    if ex_high is True and high is not None:
        ex_high = high
    if (bound := _number_or_none(ex_low)) is not None:
        low = bound + step if low is None else max(low, bound + step)
    if (bound := _number_or_none(ex_high)) is not None:
        high = bound - step if high is None else min(high, bound - step)
    return low, high


def valid_document(schema: Json, text: str) -> Any:
    """Return a document valid against schema; its strings are drawn from text."""
    return _build(schema, text, broken=False)


def invalid_document(schema: Json, text: str) -> Any:
    """Return valid JSON that breaks schema: a required property dropped, or a wrong type."""
    return _build(schema, text, broken=True)


def _build(schema: Json, text: str, broken: bool) -> Any:
    """Build a document; a schema it cannot use is a BadRequest."""
    builder = _Builder(schema, text or "text")
    try:
        return builder.broken(schema) if broken else builder.value(schema)
    except (AttributeError, TypeError, ValueError) as exc:
        raise BadRequest(f"response schema: cannot be used: {exc}") from exc
