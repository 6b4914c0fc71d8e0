"""Request events off the bus: any body is an event or a refusal, and an event survives the wire."""

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from pipeline.bus.admission import Refused, parse_event
from schemas import REQUEST_SCHEMA, RequestEvent
from schemas.events import JobId

_JOB_IDS = TypeAdapter(JobId)
job_id_chars = st.characters(codec="ascii") | st.sampled_from("_.:-\n\r")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40)
prompts = st.fixed_dictionaries(
    {"model": st.sampled_from(["flash", "pro"]), "prompt": text},
    optional={"params": st.fixed_dictionaries({}, optional={"temperature": st.floats(0, 2)})},
)
events = st.fixed_dictionaries(
    {
        "schema": st.just(REQUEST_SCHEMA),
        "job_id": st.from_regex(r"\A[A-Za-z0-9_.:-]{1,128}\Z"),
        "request": prompts,
    },
    optional={
        "tenant": st.text(max_size=20),
        "correlation_id": st.text(max_size=20),
        "metadata": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
        "webhook": st.just({"url": "https://hooks.example.com/in"}),
    },
)


@settings(max_examples=150)
@given(
    body=st.binary(max_size=64)
    | json_values.map(orjson.dumps)
    | st.builds(
        lambda event, job_id, extra: orjson.dumps({**event, "job_id": job_id, **extra}),
        events,
        st.text(job_id_chars, max_size=10) | json_values,
        st.dictionaries(st.sampled_from(["schema", "request", "tenant", "x"]), json_values),
    )
)
# Found by this property: a trailing newline passed `re.match(...$)` and was named.
@example(body=b'{"schema": "promptbus.request/v1", "job_id": "ok\\n"}')
def test_any_body_is_an_event_or_a_refusal_naming_a_usable_job_id(body: bytes) -> None:
    try:
        event = parse_event(body)
    except Refused as refused:
        # A refusal may speak for the job id it names (its failure event is published
        # under it), so the id must be one a job could have.
        if refused.job_id is not None:
            _JOB_IDS.validate_python(refused.job_id)
    else:
        assert event.schema_ == REQUEST_SCHEMA


@given(data=events)
def test_an_event_reads_back_as_published(data: dict[str, object]) -> None:
    event = RequestEvent.model_validate(data)
    wire = orjson.dumps(event.model_dump(mode="json", by_alias=True, exclude_none=True))

    assert parse_event(wire) == event
    # Key order and whitespace on the wire do not matter.
    spaced = orjson.dumps(orjson.loads(wire), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    assert parse_event(spaced) == event


@given(data=events, bad=st.sampled_from(["", "a b", "x" * 129, "ok\n", "\u00e9"]))
def test_a_bad_job_id_is_refused_and_not_named(data: dict[str, object], bad: str) -> None:
    with pytest.raises(ValidationError):
        _JOB_IDS.validate_python(bad)
    with pytest.raises(Refused) as refused:
        parse_event(orjson.dumps({**data, "job_id": bad}))
    assert refused.value.job_id is None
