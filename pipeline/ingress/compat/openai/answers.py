"""promptbus answers as OpenAI's `chat.completion` and `chat.completion.chunk` objects."""

import time
from collections.abc import Mapping
from typing import Any, Final

import orjson

from pipeline.chat_completions import (
    extension,
    finish_reason,
    render_completion,
    tool_calls,
    usage,
)
from pipeline.errors import PromptbusError
from pipeline.ingress.compat.openai.errors import error_object
from pipeline.ingress.sse import event

DONE: Final = b"data: [DONE]\n\n"

__all__ = ["DONE", "ChatStream", "finish_reason", "render_completion", "usage"]


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
