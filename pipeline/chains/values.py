"""The values a chain passes between steps, and the deterministic steps over them."""

from collections.abc import Mapping
from typing import Any, Final

import orjson
from langchain_text_splitters import RecursiveCharacterTextSplitter

from pipeline.chains.spec import INDEX, ITEM, ReduceStep, Source, TransformStep
from pipeline.errors import ChainStepFailed

# A list a map runs over, or a split makes, holds at most this many items.
MAX_ITEMS: Final = 1000
_CLOSING: Final = ".!\"'`"


def resolve(state: Mapping[str, Any], source: Source, step: str) -> Any:
    """The value `source` names in `state`; ChainStepFailed if a field of it is missing."""
    value = state[source.name]
    for part in source.path:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and 0 <= _index(part) < len(value):
            value = value[int(part)]
        else:
            raise ChainStepFailed(
                f"step {step!r}: {str(source)!r} has no {part!r} (the value is {_shown(value)})"
            )
    return value


def as_text(value: Any) -> str:
    """A value as the text a prompt receives: text as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def as_list(value: Any, step: str, source: Source) -> list[Any]:
    """`value` if it is a list of at most MAX_ITEMS; ChainStepFailed otherwise."""
    if not isinstance(value, list):
        raise ChainStepFailed(f"step {step!r}: {str(source)!r} is not a list but {_shown(value)}")
    if len(value) > MAX_ITEMS:
        raise ChainStepFailed(
            f"step {step!r}: {str(source)!r} has {len(value)} items; at most {MAX_ITEMS}"
        )
    return value


def label_of(value: Any) -> str:
    """A value as a branch compares it: trimmed, lower case, without closing punctuation."""
    text = as_text(value)
    # Until nothing changes: "yes. ." has a space inside its closing punctuation.
    while (trimmed := text.strip().strip(_CLOSING)) != text:
        text = trimmed
    return text.lower()


def reduce(step: ReduceStep, state: Mapping[str, Any]) -> str:
    """The list `over`, each item formatted, joined into one text."""
    items = as_list(resolve(state, step.over, step.name), step.name, step.over)
    return step.separator.join(
        step.item_format.format_map({ITEM: as_text(item), INDEX: index})
        for index, item in enumerate(items, start=1)
    )


def transform(step: TransformStep, state: Mapping[str, Any]) -> Any:
    """The deterministic step's output."""
    if step.op == "object":
        fields = step.fields or {}
        return {
            key: resolve(state, value, step.name) if isinstance(value, Source) else value
            for key, value in fields.items()
        }
    assert step.input is not None
    value = resolve(state, step.input, step.name)
    match step.op:
        case "split":
            splitter = RecursiveCharacterTextSplitter(
                chunk_size=step.chunk_chars, chunk_overlap=step.overlap_chars
            )
            chunks = splitter.split_text(as_text(value))
            return as_list(chunks, step.name, step.input)
        case "lines":
            return as_list(
                [line.strip() for line in as_text(value).splitlines() if line.strip()],
                step.name,
                step.input,
            )
        case "join":
            items = as_list(value, step.name, step.input)
            return step.separator.join(as_text(item) for item in items)
        case "equals":
            return label_of(value) == step.value
        case _:  # pick: the source's field is the value
            return value


def _index(part: str) -> int:
    """`part` as a list index; -1 unless it is ASCII digits (str.isdigit also takes "²")."""
    return int(part) if part.isascii() and part.isdigit() else -1


def _shown(value: Any, limit: int = 80) -> str:
    text = as_text(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")
