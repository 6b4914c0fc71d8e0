"""OpenAI's bodies as promptbus sends them, as JSON Schemas for the OpenAPI document.

They follow `answers.py`, `models.py` and `errors.py`; a change to what those render
belongs here too. promptbus's own envelopes appear as their models (refs in the document).
"""

from typing import Any, Final

from schemas import CacheInfo, Cost, RoutingInfo

_STRING: Final = {"type": "string"}
_INTEGER: Final = {"type": "integer"}
_FINISH: Final = {"enum": ["stop", "length", "tool_calls", "content_filter"]}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
    }


USAGE: Final = _object(
    {"prompt_tokens": _INTEGER, "completion_tokens": _INTEGER, "total_tokens": _INTEGER}
)
TOOL_CALL: Final = _object(
    {
        "id": _STRING,
        "type": {"const": "function"},
        "function": _object(
            {"name": _STRING, "arguments": {**_STRING, "description": "The arguments, as JSON"}}
        ),
    },
    {"index": _INTEGER},
)
EXTENSION: Final = {
    **_object(
        {"provider": _STRING, "provider_model": _STRING, "cost": Cost, "cache": CacheInfo},
        {"routing": {"anyOf": [RoutingInfo, {"type": "null"}]}},
    ),
    "description": "promptbus's own account of the answer: where it came from, what it cost",
}
_HEAD: Final = {
    "id": _STRING,
    "created": _INTEGER,
    "model": {**_STRING, "description": "The model as the request named it"},
    "system_fingerprint": {"type": "null"},
}

CHAT_COMPLETION: Final = _object(
    {
        **_HEAD,
        "object": {"const": "chat.completion"},
        "choices": {
            "type": "array",
            "items": _object(
                {
                    "index": _INTEGER,
                    "message": _object(
                        {
                            "role": {"const": "assistant"},
                            "content": {"type": ["string", "null"]},
                            "refusal": {"type": "null"},
                        },
                        {"tool_calls": {"type": "array", "items": TOOL_CALL}},
                    ),
                    "logprobs": {"type": "null"},
                    "finish_reason": _FINISH,
                }
            ),
        },
        "usage": USAGE,
        "promptbus": EXTENSION,
    }
)
CHAT_CHUNK: Final = _object(
    {
        **_HEAD,
        "object": {"const": "chat.completion.chunk"},
        "choices": {
            "type": "array",
            "items": _object(
                {
                    "index": _INTEGER,
                    "delta": _object(
                        {},
                        {
                            "role": {"const": "assistant"},
                            "content": _STRING,
                            "tool_calls": {"type": "array", "items": TOOL_CALL},
                        },
                    ),
                    "logprobs": {"type": "null"},
                    "finish_reason": {"anyOf": [_FINISH, {"type": "null"}]},
                }
            ),
        },
    },
    {"usage": {"anyOf": [USAGE, {"type": "null"}]}, "promptbus": EXTENSION},
)

ERROR: Final = _object(
    {
        "error": _object(
            {
                "message": _STRING,
                "type": _STRING,
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            }
        )
    }
)

MODEL: Final = {
    **_object(
        {
            "id": _STRING,
            "object": {"const": "model"},
            "created": _INTEGER,
            "owned_by": _STRING,
        },
        {
            "provider": _STRING,
            "aliases": {"type": "array", "items": _STRING},
            "input_per_million_usd": {"type": "number"},
            "output_per_million_usd": {"type": "number"},
            "rpm": {"type": ["integer", "null"]},
            "tpm": {"type": ["integer", "null"]},
            "circuit": {"enum": ["closed", "open", "half_open"]},
        },
    ),
    "description": "OpenAI's model object, with promptbus's own fields for a provider model",
}
ROUTE: Final = _object(
    {
        "id": _STRING,
        "object": {"const": "model"},
        "created": _INTEGER,
        "owned_by": {"const": "promptbus"},
        "strategy": _STRING,
        "fallback_on_blocked": {"type": "boolean"},
        "deployments": {
            "type": "array",
            "items": _object({"deployment": _STRING, "weight": {"type": "number"}}),
        },
    }
)
MODEL_LIST: Final = _object(
    {
        "object": {"const": "list"},
        "data": {"type": "array", "items": MODEL},
        "routes": {"type": "array", "items": ROUTE},
    }
)
