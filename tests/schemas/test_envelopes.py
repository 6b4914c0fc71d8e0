"""Envelopes are frozen, strict about unknown fields, and round-trip through JSON."""

import pydantic
import pytest

from schemas import (
    CompletionEvent,
    GenerateRequest,
    JobState,
    Message,
    RequestEvent,
    Role,
)


def test_request_is_frozen_and_rejects_unknown_fields():
    request = GenerateRequest(model="flash", prompt="hi")

    with pytest.raises(pydantic.ValidationError):
        request.model = "pro"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        GenerateRequest.model_validate({"model": "flash", "prompt": "hi", "extra": 1})


def test_conversation_puts_the_system_text_first():
    request = GenerateRequest(model="flash", prompt="hi", system="be brief")

    assert request.conversation() == (
        Message(role=Role.SYSTEM, content="be brief"),
        Message(role=Role.USER, content="hi"),
    )


def test_request_event_round_trips_with_its_schema_field():
    event = RequestEvent.model_validate(
        {
            "schema": "promptbus.request/v1",
            "job_id": "job-1",
            "request": {"model": "flash", "prompt": "hi"},
            "webhook": {"url": "https://example.com/hook"},
        }
    )
    wire = event.model_dump_json(by_alias=True)

    assert '"schema":"promptbus.request/v1"' in wire
    assert RequestEvent.model_validate_json(wire) == event


def test_request_event_rejects_another_schema_and_bad_job_ids():
    base = {"job_id": "ok", "request": {"model": "flash", "prompt": "hi"}}
    with pytest.raises(pydantic.ValidationError):
        RequestEvent.model_validate({**base, "schema": "promptbus.request/v2"})
    with pytest.raises(pydantic.ValidationError):
        RequestEvent.model_validate({**base, "job_id": "has spaces"})


def test_completion_event_states_are_terminal_only():
    base = {"job_id": "j", "correlation_id": "c", "finished_at": 1.0}
    assert (
        CompletionEvent.model_validate({**base, "state": "succeeded"}).state is JobState.SUCCEEDED
    )
    with pytest.raises(pydantic.ValidationError):
        CompletionEvent.model_validate({**base, "state": "running"})
