"""Reading a batch's input before anything runs: every line checked, each fault named.

A batch whose input has any fault fails in `validating` with the faults (up to
`MAX_ERRORS`, each with its line, 1-based) and sends nothing upstream.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from pipeline.batches.store import NewItem
from pipeline.errors import PromptbusError
from schemas import GenerateRequest

ENDPOINTS: Final = ("/v1/chat/completions", "/v1/generate")
MAX_ERRORS: Final = 100
MAX_CUSTOM_ID: Final = 256

# How an endpoint's request body becomes promptbus's own request (raises PromptbusError for
# a bad body or an unknown model); given by the surface that knows the endpoint's shape.
RequestReader = Callable[[str, object], GenerateRequest]


@dataclass
class Checked:
    """The items of an input that passed, or the faults of one that did not."""

    items: list[NewItem] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def fault(self, code: str, message: str, line: int | None, param: str | None = None) -> None:
        """Note a fault (the first MAX_ERRORS are kept)."""
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"code": code, "message": message, "line": line, "param": param})


@dataclass(frozen=True, slots=True)
class Limits:
    """How big an input may be."""

    max_bytes: int
    max_lines: int


def check_file(content: bytes, endpoint: str, limits: Limits, read: RequestReader) -> Checked:
    """The requests of a JSONL input file (`{custom_id, method, url, body}` a line)."""
    checked = Checked()
    if len(content) > limits.max_bytes:
        checked.fault("file_too_large", f"the file is over {limits.max_bytes} bytes", None)
        return checked
    lines = [(n, raw) for n, raw in enumerate(content.splitlines(), 1) if raw.strip()]
    if len(lines) > limits.max_lines:
        message = f"the file has {len(lines)} requests; at most {limits.max_lines} are allowed"
        checked.fault("too_many_requests", message, None)
        return checked
    if not lines:
        checked.fault("empty_file", "the file has no requests", None)
        return checked
    entries: list[tuple[int, object]] = []
    for number, raw in lines:
        try:
            entries.append((number, orjson.loads(raw)))
        except orjson.JSONDecodeError as exc:
            checked.fault("invalid_json_line", f"line {number} is not JSON: {exc}", number)
    _check_entries(checked, entries, endpoint, read, file_lines=True)
    return checked


def check_inline(
    requests: Sequence[object], endpoint: str, max_count: int, read: RequestReader
) -> Checked:
    """The requests of an inline batch (`{custom_id, body}` each)."""
    checked = Checked()
    if not requests:
        checked.fault("empty_batch", "the batch has no requests", None, "requests")
    elif len(requests) > max_count:
        message = f"{len(requests)} inline requests; at most {max_count} are allowed"
        checked.fault("too_many_requests", message, None, "requests")
    else:
        entries = list(enumerate(requests, 1))
        _check_entries(checked, entries, endpoint, read, file_lines=False)
    return checked


def _check_entries(
    checked: Checked,
    entries: Sequence[tuple[int, object]],
    endpoint: str,
    read: RequestReader,
    *,
    file_lines: bool,
) -> None:
    seen: set[str] = set()
    for number, entry in entries:
        if not isinstance(entry, dict):
            checked.fault("invalid_request", f"line {number} is not a JSON object", number)
            continue
        custom_id = entry.get("custom_id")
        if not isinstance(custom_id, str) or not 0 < len(custom_id) <= MAX_CUSTOM_ID:
            message = f"line {number}: custom_id must be a string of 1 to {MAX_CUSTOM_ID} chars"
            checked.fault("invalid_custom_id", message, number, "custom_id")
            continue
        if custom_id in seen:
            message = f"line {number}: custom_id {custom_id!r} appears more than once"
            checked.fault("duplicate_custom_id", message, number, "custom_id")
            continue
        seen.add(custom_id)
        if file_lines and not _right_endpoint(checked, entry, number, endpoint):
            continue
        try:
            request = read(endpoint, entry.get("body"))
        except PromptbusError as exc:
            code = "model_not_found" if exc.type == "unknown_model" else "invalid_request"
            checked.fault(code, f"line {number}: {exc.message}", number, exc.field)
            continue
        dumped = request.model_dump(mode="json", exclude_none=True)
        checked.items.append(NewItem(custom_id, number - 1, dumped))


def _right_endpoint(checked: Checked, entry: dict[str, Any], number: int, endpoint: str) -> bool:
    if entry.get("method", "POST") != "POST":
        checked.fault("invalid_method", f"line {number}: method must be POST", number, "method")
        return False
    if entry.get("url") != endpoint:
        message = f"line {number}: url {entry.get('url')!r} is not the batch's endpoint {endpoint}"
        checked.fault("mismatched_endpoint", message, number, "url")
        return False
    return True
