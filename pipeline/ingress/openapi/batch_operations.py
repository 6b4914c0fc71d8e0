"""The Files and Batches routes, as the OpenAPI document shows them (OpenAI's shapes)."""

from typing import Any, Final

from pipeline.ingress.batches import BatchCreate
from pipeline.ingress.compat.openai import shapes as openai
from pipeline.ingress.openapi.document import Operation, Param, Reply, Stream

_STRING: Final = {"type": "string"}
_INTEGER: Final = {"type": "integer"}
_STAMP: Final = {"anyOf": [_INTEGER, {"type": "null"}]}
_NULLABLE_STRING: Final = {"anyOf": [_STRING, {"type": "null"}]}
_STATUS: Final = {
    "enum": [
        "validating",
        "failed",
        "in_progress",
        "finalizing",
        "completed",
        "expired",
        "cancelling",
        "cancelled",
    ]
}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


FILE: Final = _object(
    {
        "id": _STRING,
        "object": {"const": "file"},
        "bytes": _INTEGER,
        "created_at": _INTEGER,
        "expires_at": _INTEGER,
        "filename": _STRING,
        "purpose": _STRING,
        "status": _STRING,
    }
)
FILE_DELETED: Final = _object(
    {"id": _STRING, "object": {"const": "file"}, "deleted": {"type": "boolean"}}
)
FILE_PAGE: Final = _object(
    {
        "object": {"const": "list"},
        "data": {"type": "array", "items": FILE},
        "first_id": _NULLABLE_STRING,
        "last_id": _NULLABLE_STRING,
        "has_more": {"type": "boolean"},
    }
)
BATCH_ERROR: Final = _object(
    {
        "code": _STRING,
        "message": _STRING,
        "line": {"anyOf": [_INTEGER, {"type": "null"}]},
        "param": _NULLABLE_STRING,
    }
)
BATCH: Final = _object(
    {
        "id": _STRING,
        "object": {"const": "batch"},
        "endpoint": _STRING,
        "input_file_id": _STRING,
        "completion_window": _STRING,
        "status": _STATUS,
        "mode": {"enum": ["gateway", "provider"]},
        "output_file_id": _NULLABLE_STRING,
        "error_file_id": _NULLABLE_STRING,
        "errors": {
            "anyOf": [
                _object(
                    {"object": {"const": "list"}, "data": {"type": "array", "items": BATCH_ERROR}}
                ),
                {"type": "null"},
            ]
        },
        "request_counts": _object({"total": _INTEGER, "completed": _INTEGER, "failed": _INTEGER}),
        "metadata": {"anyOf": [{"type": "object"}, {"type": "null"}]},
        "created_at": _INTEGER,
        "expires_at": _INTEGER,
        **{
            f"{state}_at": _STAMP
            for state in (
                "in_progress",
                "finalizing",
                "completed",
                "failed",
                "expired",
                "cancelling",
                "cancelled",
            )
        },
    }
)
BATCH_PAGE: Final = _object(
    {
        "object": {"const": "list"},
        "data": {"type": "array", "items": BATCH},
        "first_id": _NULLABLE_STRING,
        "last_id": _NULLABLE_STRING,
        "has_more": {"type": "boolean"},
    }
)
BATCH_STREAM: Final = Stream(
    "`batch.progress` on each change of status or counts, then the end "
    "(`batch.completed|failed|expired|cancelled`); data: the batch",
    {
        name: BATCH
        for name in (
            "batch.progress",
            "batch.completed",
            "batch.failed",
            "batch.expired",
            "batch.cancelled",
        )
    },
)
_FILE_ID: Final = "/v1/files/{file_id}"
_BATCH_ID: Final = "/v1/batches/{batch_id}"

BATCH_OPERATIONS: Final = (
    Operation(
        "POST",
        "/v1/files",
        "Upload a batch input file (multipart/form-data: `file`, `purpose=batch`)",
        replies=(Reply(200, "The file", FILE),),
        errors=(400, 401, 413, 415, 422),
        error_body=openai.ERROR,
    ),
    Operation(
        "GET",
        "/v1/files",
        "The caller's files (inputs and batch outputs), a cursor page",
        params=(
            Param("purpose", "query", {"enum": ["batch", "batch_output"]}, "Only this purpose"),
            Param("limit", "query", _INTEGER, "1 to 10000, default 10000"),
            Param("after", "query", _STRING, "The id of the last file of the page before"),
            Param("order", "query", {"enum": ["asc", "desc"]}, "By creation; default desc"),
        ),
        replies=(Reply(200, "A page", FILE_PAGE),),
        errors=(400, 401),
        error_body=openai.ERROR,
    ),
    Operation(
        "GET",
        _FILE_ID,
        "A file of the caller's tenant",
        replies=(Reply(200, "The file", FILE),),
        errors=(401, 404),
        error_body=openai.ERROR,
    ),
    Operation(
        "GET",
        _FILE_ID + "/content",
        "A file's bytes (JSONL)",
        replies=(Reply(200, "The bytes", {"type": "string"}),),
        errors=(401, 404),
        error_body=openai.ERROR,
    ),
    Operation(
        "DELETE",
        _FILE_ID,
        "Delete a file",
        replies=(Reply(200, "Deleted", FILE_DELETED),),
        errors=(401, 404),
        error_body=openai.ERROR,
    ),
    Operation(
        "POST",
        "/v1/batches",
        "Create a batch from an input file or inline `requests` (`mode: provider`: run as one "
        "Gemini Batch API job); a bad input fails it at once",
        body=BatchCreate,
        replies=(Reply(200, "The batch (in_progress, or failed with its errors)", BATCH),),
        errors=(400, 401, 403, 404, 413, 415, 422, 503),
        error_body=openai.ERROR,
    ),
    Operation(
        "GET",
        "/v1/batches",
        "The caller's batches, newest first (a cursor page)",
        params=(
            Param("after", "query", _STRING, "The id of the last batch of the page before"),
            Param("limit", "query", _INTEGER, "1 to 100, default 20"),
        ),
        replies=(Reply(200, "A page", BATCH_PAGE),),
        errors=(400, 401),
        error_body=openai.ERROR,
    ),
    Operation(
        "GET",
        _BATCH_ID,
        "A batch, with its counts",
        replies=(Reply(200, "The batch", BATCH),),
        errors=(401, 404),
        error_body=openai.ERROR,
    ),
    Operation(
        "POST",
        _BATCH_ID + "/cancel",
        "Cancel a batch: finished items are kept, the rest end `batch_cancelled`",
        replies=(Reply(200, "The batch (cancelling or cancelled)", BATCH),),
        errors=(401, 404, 409),
        error_body=openai.ERROR,
    ),
    Operation(
        "GET",
        _BATCH_ID + "/events",
        "A batch's progress as SSE, ending with its end",
        replies=(Reply(200, "The events", stream=BATCH_STREAM),),
        errors=(401, 404),
        error_body=openai.ERROR,
    ),
)
