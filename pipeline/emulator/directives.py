"""Fault directives written into prompts: `[[emulator:status=503,retry_after=2]]`."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pipeline.emulator.state import BadRequest

JsonFault = Literal["invalid", "malformed", "invalid_then_valid", "malformed_then_valid"]
# How a whole batch job ends when one of its requests says so (`batch=failed`).
BatchEnd = Literal["failed", "expired"]

JSON_FAULTS: Final[tuple[JsonFault, ...]] = (
    "invalid",
    "malformed",
    "invalid_then_valid",
    "malformed_then_valid",
)
_DIRECTIVE: Final = re.compile(r"\[\[emulator:([^\]]*)\]\]")


@dataclass(frozen=True)
class Directives:
    """What a call must do instead of (or on top of) answering normally."""

    status: int | None = None
    retry_after_s: float | None = None
    block: Literal["safety", "prompt"] | None = None
    empty: bool = False
    delay_ms: float = 0.0
    reset: bool = False
    json: JsonFault | None = None
    # Answer with this many tool calls (when tools are offered and a user turn is last).
    tool_calls: int | None = None
    # Stream controls; a non-stream call ignores them.
    chunks: int | None = None
    chunk_delay_ms: float = 0.0
    cut: int | None = None
    stream_error: int | None = None
    # The answer's text, word for word (`say=billing`), and fields set in a JSON answer
    # (`set=verdict:fail`): how a test makes a classifier or a checker answer as it needs.
    say: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    # In a batch job: the whole job ends so, answering nothing (`batch=failed|expired`).
    batch: BatchEnd | None = None

    @property
    def stops_after(self) -> int | None:
        """Return after how many content chunks a stream is cut or fails (None: it ends well)."""
        return self.cut if self.cut is not None else self.stream_error


def strip_directives(text: str) -> str:
    """Return text with every directive removed and whitespace collapsed."""
    return " ".join(_DIRECTIVE.sub(" ", text).split())


def _seconds(value: str) -> float | None:
    """Parse a non-negative decimal number, or None."""
    return float(value) if value.replace(".", "", 1).isdigit() else None


def _count(value: str, low: int, high: int) -> int | None:
    """Parse a whole number within [low, high], or None."""
    return int(value) if value.isdigit() and low <= int(value) <= high else None


# Whole-number directives (each sets the field of its name) and their bounds.
_COUNTS: Final = {
    "tool_calls": (1, 4),
    "chunks": (1, 64),
    "cut": (0, 1_000_000),
    "stream_error": (0, 1_000_000),
}


def _parse_item(item: str) -> dict[str, Any]:
    """Turn one `key=value` item into Directives fields; unknown items are a 400."""
    key, _, value = item.partition("=")
    if key in _COUNTS and (count := _count(value, *_COUNTS[key])) is not None:
        return {key: count}
    if key == "status" and value.isdigit() and 400 <= int(value) <= 599:
        return {"status": int(value)}
    if key == "retry_after" and (seconds := _seconds(value)) is not None:
        return {"retry_after_s": seconds}
    if key == "block" and value in ("safety", "prompt"):
        return {"block": value}
    if key in ("empty", "reset") and not value:
        return {key: True}
    if key == "delay" and (delay := _seconds(value)) is not None:
        return {"delay_ms": delay}
    if key == "chunk_delay" and (delay := _seconds(value)) is not None:
        return {"chunk_delay_ms": delay}
    if key == "json" and value in JSON_FAULTS:
        return {"json": value}
    if key == "batch" and value in ("failed", "expired"):
        return {"batch": value}
    if key == "say" and value.strip():
        return {"say": value.strip()}
    if key == "set" and (field := value.partition(":"))[1] and field[0].strip():
        return {"fields": ((field[0].strip(), field[2].strip()),)}
    raise BadRequest(f"Unknown emulator directive: {item!r}")


def _parse_text(text: str) -> dict[str, Any]:
    """Collect the directive fields found in one text."""
    found: dict[str, Any] = {}
    for group in _DIRECTIVE.findall(text):
        for item in filter(None, (part.strip() for part in group.split(","))):
            parsed = _parse_item(item)
            if "fields" in parsed:  # several set= items add up
                parsed["fields"] = (*found.get("fields", ()), *parsed["fields"])
            found.update(parsed)
    return found


def parse_directives(user_turns: Sequence[str]) -> Directives:
    """Read the directives of a conversation, given the text of each user turn in order.

    Faults come from the last user turn only; a `json=` directive counts in any user
    turn, because a repair re-ask appends a turn that does not repeat it.
    """
    parsed = [_parse_text(text) for text in user_turns]
    found = parsed[-1] if parsed else {}
    if "retry_after_s" in found and "status" not in found:
        raise BadRequest("Emulator directive retry_after needs a status directive")
    if "cut" in found and "stream_error" in found:
        raise BadRequest("Emulator directives cut and stream_error exclude each other")
    json_fault = next((p["json"] for p in reversed(parsed) if "json" in p), None)
    return Directives(**{**found, "json": json_fault})
