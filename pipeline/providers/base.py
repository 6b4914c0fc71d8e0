"""What the generate stage needs from a provider."""

from collections.abc import AsyncGenerator
from typing import Any, Protocol

from schemas import GenerationParams, Message, SafetySetting
from schemas.stages import Generation


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
        safety_settings: tuple[SafetySetting, ...] | None = None,
    ) -> Generation:
        """One answer from one call, never retried here.

        With `response_schema` the model is asked for JSON matching it (the provider's JSON
        mode); the raw text comes back unvalidated. `safety_settings` reach Gemini models;
        other families ignore them. Failures raise a PromptbusError subclass
        whose `retryable` says whether another call may succeed, with `retry_after_s` set
        when the server said how long to wait.
        """
        ...

    def stream(
        self,
        provider_model: str,
        conversation: tuple[Message, ...],
        params: GenerationParams,
        *,
        response_schema: dict[str, Any] | None = None,
        safety_settings: tuple[SafetySetting, ...] | None = None,
    ) -> AsyncGenerator[str | Generation, None]:
        """The answer's text deltas as they arrive, then the whole answer, from one call.

        Failures raise as `generate`'s do; a stream that stops before the model finished
        raises too. Closing the iterator early cancels the upstream call.
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
