"""Reading a batch's input: every fault named with its line, nothing kept from a bad input."""

import json
from typing import Any

import pytest

from pipeline.batches.validation import Limits, check_file, check_inline
from pipeline.errors import UnknownModel, ValidationFailed
from schemas import GenerateRequest

ENDPOINT = "/v1/generate"
LIMITS = Limits(max_bytes=10_000, max_lines=5)


def read(endpoint: str, body: object) -> GenerateRequest:
    assert endpoint == ENDPOINT
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be an object", field="body")
    if body.get("model") != "flash":
        raise UnknownModel(f"unknown model {body.get('model')!r}", field="model")
    return GenerateRequest.model_validate(body)


def line(custom_id: Any, model: str = "flash", **extra: Any) -> bytes:
    entry = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT}
    entry["body"] = {"model": model, "prompt": "hi"}
    return json.dumps({**entry, **extra}).encode()


def test_a_good_file_gives_its_items_in_line_order() -> None:
    checked = check_file(b"\n".join([line("a"), b"", line("b")]), ENDPOINT, LIMITS, read)
    assert checked.errors == []
    assert [(i.custom_id, i.line) for i in checked.items] == [("a", 0), ("b", 2)]
    assert checked.items[0].request["model"] == "flash"


@pytest.mark.parametrize(
    ("content", "code", "at"),
    [
        (line("a") + b"\n{oops", "invalid_json_line", 2),
        (line("a") + b"\n" + line("a"), "duplicate_custom_id", 2),
        (line("a", url="/v1/chat/completions"), "mismatched_endpoint", 1),
        (line("a", method="GET"), "invalid_method", 1),
        (line(""), "invalid_custom_id", 1),
        (line(7), "invalid_custom_id", 1),
        (line("x" * 300), "invalid_custom_id", 1),
        (line("a", model="nope"), "model_not_found", 1),
        (line("a", body=[1]), "invalid_request", 1),
        (b"[1, 2]", "invalid_request", 1),
        (b"\n".join(line(str(n)) for n in range(6)), "too_many_requests", None),
        (b"x" * 10_001, "file_too_large", None),
        (b"\n\n", "empty_file", None),
    ],
)
def test_each_fault_is_named_with_its_line(content: bytes, code: str, at: int | None) -> None:
    checked = check_file(content, ENDPOINT, LIMITS, read)
    assert [(e["code"], e["line"]) for e in checked.errors][:1] == [(code, at)]


def test_every_faulty_line_is_named_up_to_the_cap() -> None:
    content = b"\n".join([b"{bad"] * 5)
    checked = check_file(content, ENDPOINT, Limits(10_000, 200), read)
    assert [e["line"] for e in checked.errors] == [1, 2, 3, 4, 5]


def test_inline_requests_are_checked_alike_and_bounded() -> None:
    good = [{"custom_id": "a", "body": {"model": "flash", "prompt": "hi"}}]
    assert [i.custom_id for i in check_inline(good, ENDPOINT, 2, read).items] == ["a"]
    twice = good * 2
    assert check_inline(twice, ENDPOINT, 2, read).errors[0]["code"] == "duplicate_custom_id"
    assert check_inline(good * 3, ENDPOINT, 2, read).errors[0]["code"] == "too_many_requests"
    assert check_inline([], ENDPOINT, 2, read).errors[0]["code"] == "empty_batch"
