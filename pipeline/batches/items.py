"""One batch item through the one path (cache, coalescing, routing, structured output),
answered as OpenAI's batch output line, with its usage record under the batch's id."""

import time
from typing import Any

import orjson
import structlog

from pipeline.batches.ids import new_id
from pipeline.chat_completions import render_completion
from pipeline.errors import PromptbusError, RateLimited, UpstreamRateLimited
from pipeline.ledger import UsageSink, answered, caller, failed
from pipeline.sync_path import SyncPath
from pipeline.transient import TRANSIENT
from schemas import GenerateRequest

log = structlog.get_logger("promptbus.batches")

CHAT: str = "/v1/chat/completions"
# A deferred item waits at least this long, and at most this long per try.
_DEFER_MIN_S = 0.5
_DEFER_MAX_S = 60.0


class ItemDeferred(Exception):
    """Raised when an item must wait for room (a rate limit): it stays pending, for later."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"wait {wait_s:g}s")
        self.wait_s = wait_s


def line(
    custom_id: str, *, response: dict[str, Any] | None, error: dict[str, Any] | None
) -> dict[str, Any]:
    """An output or error line (OpenAI's BatchRequestOutput)."""
    return {
        "id": new_id("batch_req_"),
        "custom_id": custom_id,
        "response": response,
        "error": error,
    }


def ended_line(custom_id: str, code: str, message: str) -> dict[str, Any]:
    """The error line of an item that never ran (`batch_cancelled`, `batch_expired`)."""
    return line(custom_id, response=None, error={"code": code, "message": message})


async def run_item(
    sync_path: SyncPath,
    usage: UsageSink,
    *,
    batch_id: str,
    endpoint: str,
    tenant: str,
    key_id: str | None,
    custom_id: str,
    request: dict[str, Any],
) -> tuple[bool, dict[str, Any]]:
    """Answer one item; whether it succeeded, and its line."""
    started = time.perf_counter()
    body = GenerateRequest.model_validate(request)
    request_id = new_id("req_")
    who = caller(
        body, tenant=tenant, key_id=key_id, request_id=request_id, surface="batch", job_id=batch_id
    )
    try:
        answer = await sync_path.answer(
            body,
            request_id=request_id,
            tenant=tenant,
            max_age_s=body.cache.max_age,
            key_id=key_id,
        )
    except (RateLimited, UpstreamRateLimited) as exc:
        # No room now: the item waits (its lane on the broker), as a job would, within the
        # batch's window, rather than failing for being in a batch.
        wait_s = min(max(exc.retry_after_s or 1.0, _DEFER_MIN_S), _DEFER_MAX_S)
        raise ItemDeferred(wait_s) from exc
    except PromptbusError as exc:
        usage.record(failed(who, exc.type, _ms_since(started)))
        error = {"message": exc.message, "type": exc.type, "param": exc.field, "code": exc.type}
        response = {"status_code": exc.status, "request_id": request_id, "body": {"error": error}}
        return False, line(custom_id, response=response, error=None)
    except TRANSIENT:
        raise  # the infrastructure failed, not the item: its task runs it again
    except Exception as exc:
        log.exception("batch item raised", batch_id=batch_id, custom_id=custom_id)
        usage.record(failed(who, "internal_error", _ms_since(started)))
        error = {"code": "internal_error", "message": f"the item failed: {type(exc).__name__}"}
        return False, line(custom_id, response=None, error=error)
    parsed = orjson.loads(answer.body)
    usage.record(answered(who, parsed, _ms_since(started)))
    rendered = orjson.loads(render_completion(answer.body, parsed)) if endpoint == CHAT else parsed
    response = {"status_code": 200, "request_id": request_id, "body": rendered}
    return True, line(custom_id, response=response, error=None)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
