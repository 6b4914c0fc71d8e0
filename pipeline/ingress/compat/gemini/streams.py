"""`:streamGenerateContent`: GenerateContentResponse chunks, as SSE or as one JSON array.

With `?alt=sse` (what google-genai and LangChain ask for) each chunk is an event
`data: <chunk>` ended by a blank line (`\\r\\n\\r\\n`, as Google sends it) and the stream
ends at EOF, with no `[DONE]`. Without it Google streams one JSON array of chunks; that
is served too. Each text delta is a chunk of its own; the last chunk carries the finish
reason, the usage (Gemini's usage is cumulative, and promptbus knows it only at the end)
and promptbus's account of the answer.
"""

from collections.abc import Mapping
from typing import Any, Final

import orjson

from pipeline.errors import ContentBlocked, PromptbusError
from pipeline.ingress.compat.gemini.answers import (
    blocked_object,
    candidate,
    extension,
    finish_reason,
    usage_metadata,
)
from pipeline.ingress.compat.gemini.errors import error_object
from pipeline.resilience.calls import BLOCKED_REASONS

SSE_HEADERS: Final = {"Content-Type": "text/event-stream"}
ARRAY_HEADERS: Final = {"Content-Type": "application/json"}


class GeminiStream:
    """One stream's chunks: the same response id (and model version, once known) on each.

    Subclasses frame the chunks (`_frame`) and close the stream (`_close`).
    """

    headers: Mapping[str, str] = SSE_HEADERS

    def __init__(self, *, response_id: str, model_version: str | None) -> None:
        self._response_id = response_id
        self._model_version = model_version

    def _frame(self, chunk: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def _close(self) -> bytes:
        return b""

    def _head(self, model_version: str | None = None) -> dict[str, Any]:
        version = model_version or self._model_version
        head: dict[str, Any] = {"modelVersion": version} if version else {}
        head["responseId"] = self._response_id
        return head

    def delta(self, text: str) -> bytes:
        """A chunk holding one text delta."""
        return self._frame({"candidates": [candidate(text)], **self._head()})

    def done(self, body: bytes, response: Mapping[str, Any]) -> bytes:
        """The last chunk: no more text, any tool calls, the finish reason and the usage."""
        reason = finish_reason(response["finish_reason"])
        chunk = {
            "candidates": [candidate("", reason, response.get("tool_calls") or ())],
            "usageMetadata": usage_metadata(response),
            **self._head(response["provider_model"]),
            "promptbus": extension(response),
        }
        return self._frame(chunk) + self._close()

    def error(self, error: PromptbusError) -> bytes:
        """A withheld answer as Gemini ends one (finishReason SAFETY...), else an error."""
        if isinstance(error, ContentBlocked) or error.finish_reason in BLOCKED_REASONS:
            reason = finish_reason(error.finish_reason)
            chunk = {"candidates": [{"finishReason": reason, "index": 0}], **self._head()}
            return self._frame(chunk) + self._close()
        # "error" first: google-genai spots an error chunk by its opening '{"error":'.
        return self._frame({"error": error_object(error)}) + self._close()

    def blocked(self, error: ContentBlocked) -> bytes:
        """The whole stream of a request blocked before its first chunk: one chunk."""
        chunk = blocked_object(
            error, response_id=self._response_id, model_version=self._model_version
        )
        return self._frame(chunk) + self._close()


class SseStream(GeminiStream):
    """Chunks as Server-Sent Events (`?alt=sse`)."""

    def _frame(self, chunk: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(chunk) + b"\r\n\r\n"


class JsonArrayStream(GeminiStream):
    """Chunks as the elements of one JSON array, sent as they come (no `alt`)."""

    headers = ARRAY_HEADERS

    def __init__(self, *, response_id: str, model_version: str | None) -> None:
        super().__init__(response_id=response_id, model_version=model_version)
        self._opened = False

    def _frame(self, chunk: dict[str, Any]) -> bytes:
        lead = b",\r\n" if self._opened else b"["
        self._opened = True
        return lead + orjson.dumps(chunk)

    def _close(self) -> bytes:
        return b"]" if self._opened else b"[]"
