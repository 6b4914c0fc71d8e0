"""What the generate stage needs from a provider."""

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Protocol

from schemas import GenerateRequest, GenerationParams, Message, SafetySetting, Tool, ToolChoice
from schemas.stages import Generation


@dataclass(frozen=True, slots=True)
class ToolOffer:
    """The tools a call offers the model, and how it may use them."""

    tools: tuple[Tool, ...]
    choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None

    @classmethod
    def of(cls, request: GenerateRequest) -> "ToolOffer | None":
        """What `request` offers; None when it offers no tools."""
        if not request.tools:
            return None
        return cls(request.tools, request.tool_choice, request.parallel_tool_calls)


class ChatProvider(Protocol):
    """A chat model provider: one answer for one conversation, one upstream call."""

    name: str

    async def generate(
        self,
        provider_model: str,
        conversation: tuple[Message, ...],
        params: GenerationParams,
        *,
        response_schema: dict[str, Any] | None = None,
        tools: ToolOffer | None = None,
        user: str | None = None,
        safety_settings: tuple[SafetySetting, ...] | None = None,
    ) -> Generation:
        """One answer from one call, never retried here.

        With `response_schema` the model is asked for JSON matching it (the provider's JSON
        mode); the raw text comes back unvalidated. With `tools` the model may answer with
        tool calls instead of (or besides) text; `user` names the end user to providers
        that take one; `safety_settings` reach Gemini models (other families ignore them).
        Failures raise a PromptbusError subclass whose `retryable` says whether another
        call may succeed, with `retry_after_s` set when the server said how long to wait.
        """
        ...

    def stream(
        self,
        provider_model: str,
        conversation: tuple[Message, ...],
        params: GenerationParams,
        *,
        response_schema: dict[str, Any] | None = None,
        tools: ToolOffer | None = None,
        user: str | None = None,
        safety_settings: tuple[SafetySetting, ...] | None = None,
    ) -> AsyncGenerator[str | Generation, None]:
        """The answer's text deltas as they arrive, then the whole answer, from one call.

        Tool calls come with the whole answer, never as deltas. Failures raise as
        `generate`'s do; a stream that stops before the model finished raises too. Closing
        the iterator early cancels the upstream call.
        """
        ...

    async def count_tokens(self, provider_model: str, conversation: tuple[Message, ...]) -> int:
        """How many input tokens `conversation` is: the provider's count, else an estimate."""
        ...

    async def ready(self) -> bool:
        """Whether the provider answers at all."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
