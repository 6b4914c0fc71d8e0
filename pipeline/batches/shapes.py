"""Files and batches as OpenAI's FileObject and Batch objects."""

from datetime import datetime
from typing import Any

from pipeline.batches.provider_state import callers_metadata
from pipeline.batches.store import FileInfo
from pipeline.db.batch_tables import BatchRecord

_STAMPS = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


def _unix(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp())


def file_object(info: FileInfo) -> dict[str, Any]:
    """OpenAI's FileObject."""
    return {
        "id": info.id,
        "object": "file",
        "bytes": info.bytes,
        "created_at": _unix(info.created_at),
        "expires_at": _unix(info.expires_at),
        "filename": info.filename,
        "purpose": info.purpose,
        "status": "processed",
        "status_details": None,
    }


def counts(batch: BatchRecord) -> dict[str, int]:
    """The batch's request_counts."""
    return {"total": batch.total, "completed": batch.completed, "failed": batch.failed}


def batch_object(batch: BatchRecord) -> dict[str, Any]:
    """OpenAI's Batch object, with promptbus's `mode`."""
    shaped: dict[str, Any] = {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "input_file_id": batch.input_file_id or "",
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "errors": batch.errors,
        "created_at": _unix(batch.created_at),
        "expires_at": _unix(batch.expires_at),
        "request_counts": counts(batch),
        "metadata": callers_metadata(batch.metadata_),
        "mode": batch.mode,
    }
    for stamp in _STAMPS:
        shaped[stamp] = _unix(getattr(batch, stamp))
    return shaped
