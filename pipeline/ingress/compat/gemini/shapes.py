"""Gemini's bodies as promptbus sends them, as JSON Schemas for the OpenAPI document.

They follow `answers.py`, `streams.py`, `models.py` and `errors.py`; a change to what those
render belongs here too. promptbus's own envelopes appear as their models.
"""

from typing import Any, Final

from schemas import CacheInfo, Cost, RoutingInfo

_STRING: Final = {"type": "string"}
_INTEGER: Final = {"type": "integer"}
_NAMES: Final = {**_STRING, "description": "Gemini's enum name, e.g. STOP, MAX_TOKENS, SAFETY"}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
    }


USAGE_METADATA: Final = _object(
    {"promptTokenCount": _INTEGER, "candidatesTokenCount": _INTEGER, "totalTokenCount": _INTEGER}
)
EXTENSION: Final = {
    **_object(
        {"provider": _STRING, "provider_model": _STRING, "cost": Cost, "cache": CacheInfo},
        {"routing": {"anyOf": [RoutingInfo, {"type": "null"}]}},
    ),
    "description": "promptbus's own account of the answer: where it came from, what it cost",
}
_FUNCTION_CALL: Final = _object(
    {"functionCall": _object({"id": _STRING, "name": _STRING, "args": {"type": "object"}})}
)
_CONTENT: Final = _object(
    {
        "role": {"const": "model"},
        "parts": {
            "type": "array",
            "items": {"anyOf": [_object({"text": _STRING}), _FUNCTION_CALL]},
        },
    }
)
CANDIDATE: Final = _object(
    {"index": {"const": 0}},
    {"content": _CONTENT, "finishReason": _NAMES},
)
GENERATE_CONTENT_RESPONSE: Final = {
    **_object(
        {"responseId": _STRING},
        {
            "candidates": {"type": "array", "items": CANDIDATE, "maxItems": 1},
            "promptFeedback": _object({"blockReason": _NAMES}),
            "usageMetadata": USAGE_METADATA,
            "modelVersion": {**_STRING, "description": "The provider model that answered"},
            "promptbus": EXTENSION,
        },
    ),
    "description": "An answer, a chunk of one, or a block (promptFeedback, or finishReason "
    "SAFETY without content)",
}
ERROR: Final = _object(
    {
        "error": _object(
            {
                "code": _INTEGER,
                "message": _STRING,
                "status": {**_STRING, "description": "google.rpc.Code, e.g. INVALID_ARGUMENT"},
                "details": {
                    "type": "array",
                    "items": {
                        **_object({"@type": _STRING}),
                        "description": "ErrorInfo, BadRequest or RetryInfo",
                    },
                },
            }
        )
    }
)
CHUNKS: Final = {
    "type": "array",
    "items": {"anyOf": [GENERATE_CONTENT_RESPONSE, ERROR]},
    "description": "Without `alt=sse`: the chunks as one JSON array, sent as they come",
}
COUNT_TOKENS_RESPONSE: Final = _object({"totalTokens": _INTEGER})
MODEL: Final = _object(
    {
        "name": {**_STRING, "description": "models/<name>"},
        "displayName": _STRING,
        "description": _STRING,
        "supportedGenerationMethods": {"type": "array", "items": _STRING},
        "promptbus": {"type": "object"},
    },
    {"baseModelId": _STRING},
)
MODEL_LIST: Final = _object(
    {"models": {"type": "array", "items": MODEL}}, {"nextPageToken": _STRING}
)
