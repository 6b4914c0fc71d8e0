"""Batch input: any file is read into items or named faults, and good lines keep their place."""

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline.batches.validation import MAX_ERRORS, Limits, check_file, check_inline
from pipeline.ingress.body import validation_failed
from pipeline.ingress.compat.openai.requests import read_request, to_generate_request
from schemas import GenerateRequest

CHAT, GENERATE = "/v1/chat/completions", "/v1/generate"
LIMITS = Limits(max_bytes=200_000, max_lines=50)
text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20)


def read(endpoint: str, body: object) -> GenerateRequest:
    """The surfaces' readers, without the model catalog (every model is known here)."""
    if endpoint == CHAT:
        return to_generate_request(read_request(body))
    try:
        return GenerateRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from exc


def body_for(endpoint: str, prompt: str) -> dict[str, Any]:
    if endpoint == CHAT:
        return {"model": "flash", "messages": [{"role": "user", "content": prompt}]}
    return {"model": "flash", "prompt": prompt}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=10,
)
entry_parts = st.fixed_dictionaries(
    {},
    optional={
        "custom_id": text | json_values,
        "method": st.sampled_from(["POST", "GET"]) | json_values,
        "url": st.sampled_from([CHAT, GENERATE]) | json_values,
        "body": json_values | text.map(lambda p: body_for(CHAT, p)),
    },
)
# The json module writes what orjson will not read back (big integers, Infinity): faults too.
lines = st.one_of(
    entry_parts.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=30),
    st.just(b""),
)


@settings(max_examples=150)
@given(
    content=st.lists(lines, max_size=8).map(b"\n".join), endpoint=st.sampled_from([CHAT, GENERATE])
)
def test_any_file_gives_items_or_faults_at_real_lines(content: bytes, endpoint: str) -> None:
    checked = check_file(content, endpoint, LIMITS, read)

    count = len(content.splitlines())
    assert len(checked.errors) <= MAX_ERRORS
    assert checked.errors or checked.items or not content.strip()
    for error in checked.errors:
        assert error["line"] is None or 1 <= error["line"] <= count
        assert isinstance(error["message"], str)
        assert error["code"]
    faulty = {e["line"] for e in checked.errors}
    for item in checked.items:
        assert item.line + 1 not in faulty
        GenerateRequest.model_validate(item.request)


@st.composite
def good_files(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]], list[bytes]]:
    endpoint = draw(st.sampled_from([CHAT, GENERATE]))
    ids = draw(st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=10, unique=True))
    entries = [(custom_id, draw(text)) for custom_id in ids]
    out: list[bytes] = []
    for custom_id, prompt in entries:
        out += [b""] * draw(st.integers(0, 2))  # blank lines are skipped, and still counted
        line = {"custom_id": custom_id, "method": "POST", "url": endpoint}
        line["body"] = body_for(endpoint, prompt)
        out.append(orjson.dumps(line) + draw(st.sampled_from([b"", b"\t", b"  "])))
    return endpoint, entries, out


@given(good=good_files(), newline=st.sampled_from([b"\n", b"\r\n"]))
def test_good_lines_become_items_in_place(
    good: tuple[str, list[tuple[str, str]], list[bytes]], newline: bytes
) -> None:
    endpoint, entries, raw_lines = good
    checked = check_file(newline.join(raw_lines), endpoint, LIMITS, read)

    assert checked.errors == []
    assert [i.custom_id for i in checked.items] == [custom_id for custom_id, _ in entries]
    places = [n for n, raw in enumerate(raw_lines) if raw.strip()]
    assert [i.line for i in checked.items] == places
    # The same requests inline read the same.
    inline = [{"custom_id": c, "body": body_for(endpoint, p)} for c, p in entries]
    assert check_inline(inline, endpoint, 50, read).items == [
        type(i)(i.custom_id, n, i.request) for n, i in enumerate(checked.items)
    ]


@given(good=good_files(), data=st.data())
def test_a_repeated_custom_id_is_named_at_its_second_line(
    good: tuple[str, list[tuple[str, str]], list[bytes]], data: st.DataObject
) -> None:
    endpoint, entries, raw_lines = good
    again = data.draw(st.sampled_from(entries))[0]
    line = {"custom_id": again, "method": "POST", "url": endpoint, "body": body_for(endpoint, "x")}
    checked = check_file(b"\n".join([*raw_lines, orjson.dumps(line)]), endpoint, LIMITS, read)

    assert [(e["code"], e["line"]) for e in checked.errors] == [
        ("duplicate_custom_id", len(raw_lines) + 1)
    ]
