"""Helpers the provider tests share: conversations and providers on the test's emulator."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import SecretStr

from pipeline.emulator import EMULATOR_API_KEY
from pipeline.providers.gemini import GeminiProvider
from pipeline.providers.openai import OpenAIProvider
from schemas import GenerationParams, Message, Role

PARAMS = GenerationParams()
KEY = SecretStr(EMULATOR_API_KEY)
# A JSON Schema of the kind callers send.
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


def ask(text: str, system: str | None = None) -> tuple[Message, ...]:
    """A conversation of one user message (after an optional system message)."""
    head = (Message(role=Role.SYSTEM, content=system),) if system else ()
    return (*head, Message(role=Role.USER, content=text))


@asynccontextmanager
async def gemini_on(base_url: str, timeout_s: float = 10.0) -> AsyncIterator[GeminiProvider]:
    """A Gemini provider on `base_url` for the duration of the block."""
    provider = GeminiProvider(api_key=KEY, base_url=base_url, timeout_s=timeout_s, max_attempts=1)
    try:
        yield provider
    finally:
        await provider.aclose()


@asynccontextmanager
async def openai_on(base_url: str, timeout_s: float = 10.0) -> AsyncIterator[OpenAIProvider]:
    """An OpenAI-compatible provider on `base_url` (ending in /v1) for the block."""
    provider = OpenAIProvider(
        api_key=KEY, base_url=base_url, timeout_s=timeout_s, connect_timeout_s=2.0
    )
    try:
        yield provider
    finally:
        await provider.aclose()
