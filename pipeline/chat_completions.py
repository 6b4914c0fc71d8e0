"""promptbus answers and errors as OpenAI's `chat.completion` and error objects: one
renderer for every place that speaks OpenAI (the compat route, batch output lines)."""

from collections.abc import Mapping
from typing import Any, Final

import orjson

# promptbus's own finish reasons (lower-cased provider reasons) in OpenAI's vocabulary.
_FINISH: Final = {
    "stop": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    "spii": "content_filter",
}
# OpenAI's error types by status; anything else of 5xx is a server error.
_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_CODES: Final = {"unknown_model": "model_not_found", "content_blocked": "content_filter"}
# promptbus's 422s are bad input (ValidationFailed) and filtered answers (ContentBlocked).
_UNPROCESSABLE: Final = 422
# What the extension key carries: where the answer came from and what it cost.
_EXTENSION: Final = ("provider", "provider_model", "cost", "cache", "routing")


def finish_reason(response: Mapping[str, Any]) -> str:
    """The answer's finish reason as OpenAI names it."""
    if response.get("tool_calls"):
        return "tool_calls"
    return _FINISH.get(str(response.get("finish_reason")), "stop")


def usage(response: Mapping[str, Any]) -> dict[str, int]:
    """OpenAI's usage object."""
    used = response["usage"]
    return {
        "prompt_tokens": used["input_tokens"],
        "completion_tokens": used["output_tokens"],
        "total_tokens": used["total_tokens"],
    }


def extension(response: Mapping[str, Any]) -> dict[str, Any]:
    """promptbus's own account of the answer, under the `promptbus` key."""
    return {name: response.get(name) for name in _EXTENSION}


def tool_calls(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The answer's tool calls in OpenAI's shape (arguments as a JSON string)."""
    return [
        {
            "id": call["id"],
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": orjson.dumps(call["arguments"]).decode(),
            },
        }
        for call in response.get("tool_calls") or ()
    ]


def completion(response: Mapping[str, Any]) -> dict[str, Any]:
    """A whole answer (a GenerateResponse as JSON) as a `chat.completion`."""
    calls = tool_calls(response)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": response["text"] if response["text"] or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(response),
    }
    return {
        "id": f"chatcmpl-{response['id']}",
        "object": "chat.completion",
        "created": int(response["created"]),
        "model": response["model"],
        "system_fingerprint": None,
        "choices": [choice],
        "usage": usage(response),
        "promptbus": extension(response),
    }


def render_completion(body: bytes, response: Mapping[str, Any]) -> bytes:
    """A whole answer (its JSON `body`, parsed as `response`) as a `chat.completion`'s bytes."""
    return orjson.dumps(completion(response))


def openai_status(status: int) -> int:
    """The status of a promptbus error's status on OpenAI's surface: bad input and filtered
    prompts are 400s there."""
    return 400 if status == _UNPROCESSABLE else status


def openai_error_object(status: int, kind: str, message: str, field: str | None) -> dict[str, Any]:
    """`{"message", "type", "param", "code"}` for a promptbus error of `status` and `kind`."""
    shown = openai_status(status)
    return {
        "message": message,
        "type": _TYPES.get(shown, "server_error" if shown >= 500 else "invalid_request_error"),
        "param": field,
        "code": _CODES.get(kind, kind),
    }
