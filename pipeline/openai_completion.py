"""A promptbus answer as OpenAI's `chat.completion`: for the API and for batch output lines."""

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


def render_completion(body: bytes, response: Mapping[str, Any]) -> bytes:
    """A whole answer as a `chat.completion`."""
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
    completion = {
        "id": f"chatcmpl-{response['id']}",
        "object": "chat.completion",
        "created": int(response["created"]),
        "model": response["model"],
        "system_fingerprint": None,
        "choices": [choice],
        "usage": usage(response),
        "promptbus": extension(response),
    }
    return orjson.dumps(completion)
