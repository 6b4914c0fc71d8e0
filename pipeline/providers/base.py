"""What the generate stage needs from a provider."""

from typing import Protocol

from schemas import GenerationParams, Message
from schemas.stages import Generation


class ChatProvider(Protocol):
    """A chat model provider: one answer for one conversation."""

    name: str

    async def generate(
        self, provider_model: str, conversation: tuple[Message, ...], params: GenerationParams
    ) -> Generation:
        """One answer; raises a PromptbusError subclass on failure."""
        ...

    async def ready(self) -> bool:
        """Whether the provider answers at all."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
