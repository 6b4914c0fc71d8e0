"""A provider batch's outcomes as the items' rows (OpenAI batch lines) and usage entries."""

import time
from collections.abc import Sequence
from typing import Any, cast

from handlers.provider_batch import Endpoint, generate_response, is_error_line, output_line
from pipeline.batches.ids import new_id
from pipeline.db.batch_tables import BatchRecord
from pipeline.ledger import UsageEntry, answered, caller, failed
from pipeline.providers.batch_outcomes import ItemOutcome

# An item's row: its custom id, whether it succeeded, its output or error line.
Row = tuple[str, bool, dict[str, Any]]


def rows_and_entries(
    batch: BatchRecord, outcomes: Sequence[ItemOutcome]
) -> tuple[list[Row], list[UsageEntry]]:
    """Each outcome's line, and its usage entry under the batch's id (the batch price)."""
    endpoint = cast(Endpoint, batch.endpoint)
    started = (batch.in_progress_at or batch.created_at).timestamp()
    latency_ms = max(0.0, (time.time() - started) * 1000.0)
    rows: list[Row] = []
    entries: list[UsageEntry] = []
    for outcome in outcomes:
        request_id = new_id("req_")
        line = output_line(outcome, endpoint, line_id=new_id("batch_req_"), request_id=request_id)
        ok = not is_error_line(line)
        who = caller(
            outcome.request,
            tenant=batch.tenant,
            key_id=batch.key_id,
            request_id=request_id,
            surface="batch",
            job_id=batch.id,
        )
        if ok and outcome.answer is not None:
            response = generate_response(outcome, outcome.answer, request_id=request_id)
            entries.append(answered(who, response.model_dump(mode="json"), latency_ms))
        else:
            # An answer that failed its response schema is the one error with no detail.
            kind = outcome.error.type if outcome.error is not None else "invalid_model_output"
            entries.append(failed(who, kind, latency_ms))
        rows.append((outcome.custom_id, ok, line))
    return rows, entries
