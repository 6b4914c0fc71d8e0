"""Google Gemini through LangChain's ChatGoogleGenerativeAI, over real HTTP."""

import asyncio
import time
from typing import Any

import aiohttp
from google.genai import errors as genai_errors
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_google_genai import ChatGoogleGenerativeAI
from pydantic import SecretStr

from pipeline.errors import (
    PromptbusError,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from schemas import GenerationParams, Message, Role, Usage
from schemas.stages import Generation

GEMINI_API_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"
_RETRYABLE_CODES = frozenset({408, 429, 500, 502, 503})
_ROLE_TO_MESSAGE = {Role.SYSTEM: SystemMessage, Role.USER: HumanMessage, Role.ASSISTANT: AIMessage}


class GeminiProvider:
    """Calls Gemini models; one LangChain client per model, reused across requests."""

    name = "gemini"

    def __init__(
        self, *, api_key: SecretStr, base_url: str, timeout_s: float, max_attempts: int
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout_s = timeout_s
        # The SDK reads 1 as "one attempt, no retries" and 0 as "its default of several".
        self._max_attempts = max(1, max_attempts)
        self._clients: dict[str, ChatGoogleGenerativeAI] = {}
        self._prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("conversation")])
        self._parser = StrOutputParser()
        self._probe: aiohttp.ClientSession | None = None

    def _client(self, provider_model: str) -> ChatGoogleGenerativeAI:
        client = self._clients.get(provider_model)
        if client is None:
            client = ChatGoogleGenerativeAI(
                model=provider_model,
                google_api_key=self._api_key,
                base_url=self.base_url,
                api_version=API_VERSION,
                max_retries=self._max_attempts,
                timeout=self._timeout_s,
                temperature=None,
            )
            self._clients[provider_model] = client
        return client

    async def generate(
        self, provider_model: str, conversation: tuple[Message, ...], params: GenerationParams
    ) -> Generation:
        """One answer from `provider_model`."""
        # Template and parser are pure CPU: their sync forms avoid a thread hop each.
        prompt = self._prompt.invoke(
            {"conversation": [_ROLE_TO_MESSAGE[m.role](content=m.content) for m in conversation]}
        )
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                reply = await self._client(provider_model).ainvoke(
                    prompt.to_messages(), **_call_kwargs(params)
                )
        except Exception as exc:
            raise _translate(exc) from exc
        latency_ms = (time.perf_counter() - started) * 1000
        return Generation(
            provider=self.name,
            provider_model=provider_model,
            text=self._parser.invoke(reply),
            finish_reason=_finish_reason(reply),
            usage=_usage(reply),
            latency_ms=round(latency_ms, 3),
        )

    async def ready(self) -> bool:
        """Whether the models endpoint answers (any status below 500)."""
        if self._probe is None:
            self._probe = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0))
        url = f"{self.base_url}/{API_VERSION}/models"
        headers = {"x-goog-api-key": self._api_key.get_secret_value()}
        try:
            async with self._probe.get(url, headers=headers) as resp:
                return resp.status < 500
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def aclose(self) -> None:
        """Close the readiness probe's session and the SDK clients."""
        if self._probe is not None:
            await self._probe.close()
        for client in self._clients.values():
            if client.client is not None:
                await client.client.aio.aclose()
        self._clients.clear()


def _call_kwargs(params: GenerationParams) -> dict[str, Any]:
    kwargs: dict[str, Any] = params.model_dump(exclude_none=True)
    if "stop" in kwargs:
        kwargs["stop"] = list(kwargs["stop"])
    return kwargs


def _finish_reason(reply: AIMessage) -> str:
    meta = reply.response_metadata
    feedback = meta.get("prompt_feedback") or {}
    blocked = feedback.get("block_reason") if isinstance(feedback, dict) else None
    if blocked:
        # The prompt itself was refused, so there is no candidate and no finish reason.
        return str(getattr(blocked, "value", blocked)).lower()
    reason = meta.get("finish_reason")
    return str(getattr(reason, "value", reason or "unknown")).lower()


def _usage(reply: AIMessage) -> Usage:
    meta = reply.usage_metadata or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    return Usage(
        input_tokens=meta["input_tokens"],
        output_tokens=meta["output_tokens"],
        total_tokens=meta["total_tokens"],
    )


def _translate(exc: BaseException) -> PromptbusError:
    """The promptbus error for whatever the client raised."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, genai_errors.APIError):
            return _from_status(cause.code, cause.message or str(cause))
        if isinstance(cause, TimeoutError):
            return UpstreamTimeout("the model did not answer in time")
        if isinstance(cause, aiohttp.ClientConnectionError | ConnectionError):
            return UpstreamUnavailable(f"cannot reach the model provider: {cause}")
        cause = cause.__cause__ or cause.__context__
    return UpstreamError(f"the model provider failed: {type(exc).__name__}: {exc}")


def _from_status(code: int, message: str) -> PromptbusError:
    text = f"provider answered {code}: {message}"
    if code == 504:
        return UpstreamTimeout(text)
    if code in _RETRYABLE_CODES:
        return UpstreamUnavailable(text)
    if 400 <= code < 500:
        return UpstreamRejected(text)
    return UpstreamError(text)
