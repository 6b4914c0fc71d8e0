"""promptbus answers as OpenAI's `chat.completion` and `chat.completion.chunk` objects."""

import time
from collections.abc import Mapping
from typing import Any, Final

import orjson

from pipeline.errors import PromptbusError
from pipeline.ingress.compat.openai.errors import error_object
from pipeline.ingress.sse import event

DONE: Final = b"data: [DONE]\n\n"
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


class ChatStream:
    """One stream's `chat.completion.chunk` events: the same id and head on every chunk."""

    def __init__(self, *, completion_id: str, model: str, include_usage: bool) -> None:
        self._head: dict[str, Any] = {
            "id": f"chatcmpl-{completion_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": None,
        }
        if include_usage:
            self._head["usage"] = None
        self._include_usage = include_usage
        self._started = False

    def _chunk(self, delta: dict[str, Any], reason: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return event(None, orjson.dumps({**self._head, "choices": [choice], **extra}))

    def _opening(self) -> dict[str, Any]:
        if self._started:
            return {}
        self._started = True
        return {"role": "assistant"}

    def delta(self, text: str) -> bytes:
        """A content delta (the first carries the assistant role)."""
        return self._chunk({**self._opening(), "content": text})

    def done(self, body: bytes, response: Mapping[str, Any]) -> bytes:
        """Tool calls if any, the finish chunk, the usage chunk if asked for, then [DONE]."""
        out: list[bytes] = []
        calls = tool_calls(response)
        if calls:
            indexed = [{"index": i, **call} for i, call in enumerate(calls)]
            out.append(self._chunk({**self._opening(), "tool_calls": indexed}))
        elif not self._started:
            out.append(self._chunk({**self._opening(), "content": ""}))
        out.append(self._chunk({}, finish_reason(response), promptbus=extension(response)))
        if self._include_usage:
            out.append(
                event(None, orjson.dumps({**self._head, "choices": [], "usage": usage(response)}))
            )
        out.append(DONE)
        return b"".join(out)

    def error(self, error: PromptbusError) -> bytes:
        """An error event (the SDK raises it as an APIError); no [DONE] follows."""
        return event(None, orjson.dumps({"error": error_object(error)}))
