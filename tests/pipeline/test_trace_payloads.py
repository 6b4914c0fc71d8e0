"""The trace field of promptbus's Celery payloads: carried when set, absent when not."""

from typing import Any

import pytest

from schemas import StageEnvelope
from schemas.tracing import TraceContext
from schemas.webhooks import DeliveryTask
from tests.support.traces import TRACEPARENT

DELIVERY: dict[str, Any] = {
    "delivery_id": "msg_j",
    "message_id": "msg_j",
    "tenant": "default",
    "job_id": "j",
    "url": "http://127.0.0.1:9/hook",
    "event": {
        "job_id": "j",
        "correlation_id": "j",
        "state": "failed",
        "error": {"type": "internal_error", "message": "m", "retryable": False},
        "finished_at": 1.0,
    },
}
ENVELOPE: dict[str, Any] = {
    "request_id": "r",
    "tenant": "default",
    "job_id": "j",
    "request": {"model": "flash", "prompt": "hi"},
}


@pytest.mark.parametrize(("model", "fields"), [(DeliveryTask, DELIVERY), (StageEnvelope, ENVELOPE)])
def test_an_untraced_payload_dumps_as_it_did_before_tracing(
    model: type[DeliveryTask | StageEnvelope], fields: dict[str, Any]
) -> None:
    # A worker of an earlier version forbids unknown fields: with tracing off, none is sent
    assert "trace" not in model.model_validate(fields).model_dump(mode="json")


@pytest.mark.parametrize(("model", "fields"), [(DeliveryTask, DELIVERY), (StageEnvelope, ENVELOPE)])
def test_a_traced_payload_carries_its_context_through_a_dump(
    model: type[DeliveryTask | StageEnvelope], fields: dict[str, Any]
) -> None:
    traced = model.model_validate({**fields, "trace": {"traceparent": TRACEPARENT}})
    again = model.model_validate(traced.model_dump(mode="json"))
    assert again.trace == TraceContext(traceparent=TRACEPARENT)


def test_a_traceparent_that_is_not_w3c_is_refused() -> None:
    with pytest.raises(ValueError, match="traceparent"):
        TraceContext(traceparent="00-not-a-trace-01")
