"""The one provider over LangChain chat models: a call, its timeout, its reply, its errors."""

import asyncio
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from pipeline.errors import UpstreamUnavailable
from pipeline.providers._errors import translate
from pipeline.providers.base import ToolOffer
from pipeline.providers.dialects import BoundModel, dialect_of
from pipeline.providers.messages import to_langchain, tool_calls_of
from schemas import GenerationParams, Message, SafetySetting, Usage
from schemas.stages import Generation

# Where the reason an answer ended sits in `response_metadata`, by family.
_FINISH_KEYS = ("finish_reason", "stop_reason", "done_reason")
_PROBE_TIMEOUT_S = 2.0


class LangChainProvider:
    """A ChatProvider over LangChain chat models: one model per provider model, cached.

    Subclasses say how to build a model (`build_model`) and, where they can, how to probe
    the endpoint (`ready`); everything else is shared. Each `generate` makes exactly one
    upstream call (SDK retries are off) bounded by the provider timeout.
    """

    def __init__(self, name: str, *, timeout_s: float) -> None:
        self.name = name
        self._timeout_s = timeout_s
        # Keyed by (event loop the model is bound to, or None when it is not; provider model).
        self._models: dict[tuple[asyncio.AbstractEventLoop | None, str], BaseChatModel] = {}
        self._prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("conversation")])
        self._parser = StrOutputParser()
        self._probe: aiohttp.ClientSession | None = None

    def build_model(self, provider_model: str) -> BaseChatModel:
        """A new LangChain chat model for `provider_model`."""
        raise NotImplementedError

    def loop_scope(self) -> asyncio.AbstractEventLoop | None:
        """The event loop a model built now is bound to; None: one model serves every loop."""
        return None

    def model(self, provider_model: str) -> BaseChatModel:
        """The (cached) LangChain chat model for `provider_model` (and this loop, if bound)."""
        key = (self.loop_scope(), provider_model)
        model = self._models.get(key)
        if model is None:
            # Models of a loop that has closed (a finished runtime) must not pin its clients.
            for stale in [k for k in self._models if k[0] is not None and k[0].is_closed()]:
                del self._models[stale]
            model = self._models[key] = self.build_model(provider_model)
        return model

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
        """One answer from `provider_model`, from one upstream call."""
        model, prompt, kwargs = self._prepared(
            provider_model, conversation, params, response_schema, tools, user, safety_settings
        )
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                reply = await model.ainvoke(prompt, **kwargs)
        except Exception as exc:
            raise translate(exc) from exc
        return self._generation(provider_model, reply, started, turn=len(conversation))

    async def stream(
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

        The provider timeout bounds the wait for each chunk, not the whole stream. A stream
        that ends without a finish reason (a connection cut short) is an error, never an
        answer.
        """
        model, prompt, kwargs = self._prepared(
            provider_model, conversation, params, response_schema, tools, user, safety_settings
        )
        started = time.perf_counter()
        whole: AIMessageChunk | None = None
        chunks = model.astream(prompt, **kwargs)
        try:
            while True:
                async with asyncio.timeout(self._timeout_s):
                    chunk = await anext(chunks, None)
                if chunk is None:
                    break
                if not isinstance(chunk, AIMessageChunk):
                    raise TypeError(f"a chat model streamed {type(chunk).__name__}")
                whole = chunk if whole is None else whole + chunk
                if text := chunk.text:
                    yield text
        except Exception as exc:
            raise translate(exc) from exc
        finally:
            # Leaving early (the caller stopped listening) closes the upstream response.
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        if whole is None or finish_reason(whole) == "unknown":
            raise UpstreamUnavailable("the model's stream ended before the answer was finished")
        yield self._generation(provider_model, whole, started, turn=len(conversation))

    def _prepared(
        self,
        provider_model: str,
        conversation: tuple[Message, ...],
        params: GenerationParams,
        response_schema: dict[str, Any] | None,
        tools: ToolOffer | None,
        user: str | None,
        safety_settings: tuple[SafetySetting, ...] | None,
    ) -> tuple[BoundModel, list[BaseMessage], dict[str, Any]]:
        """The model (its tools bound), its prompt and its call kwargs for one call."""
        model = self.model(provider_model)
        dialect = dialect_of(model)
        kwargs = dialect.call_kwargs(params)
        if user is not None:
            kwargs.update(dialect.user_kwargs(user))
        if safety_settings:
            kwargs.update(dialect.safety(safety_settings))
        messages = to_langchain(conversation)
        bound: BoundModel = model
        if tools is not None:
            bound = dialect.bind_tools(model, tools.tools, tools.choice, tools.parallel_tool_calls)
        if response_schema is not None:
            mode = dialect.json_mode(response_schema)
            kwargs.update(mode.kwargs)
            if mode.instruction:
                messages.insert(0, SystemMessage(content=mode.instruction))
        # Template and parser are pure CPU: called directly, not as runnables (`invoke` adds a
        # callback manager and config per call, about 0.25 ms together, and `ainvoke` a thread hop).
        return bound, self._prompt.format_messages(conversation=messages), kwargs

    def _generation(
        self, provider_model: str, reply: AIMessage, started: float, *, turn: int
    ) -> Generation:
        latency_ms = (time.perf_counter() - started) * 1000
        invented = dialect_of(self.model(provider_model)).invents_tool_call_ids
        return Generation(
            provider=self.name,
            provider_model=provider_model,
            text=self._parser.parse(reply.text),
            tool_calls=tool_calls_of(reply, turn=turn, invented_ids=invented),
            finish_reason=finish_reason(reply),
            usage=usage(reply),
            latency_ms=round(latency_ms, 3),
            prompt_blocked=prompt_blocked(reply),
        )

    async def count_tokens(self, provider_model: str, conversation: tuple[Message, ...]) -> int:
        """The model family's own count of `conversation`'s tokens, else an estimate."""
        model = self.model(provider_model)
        try:
            async with asyncio.timeout(self._timeout_s):
                counted = await dialect_of(model).count_tokens(model, conversation)
        except Exception as exc:
            raise translate(exc) from exc
        return estimate_tokens(conversation) if counted is None else counted

    async def ready(self) -> bool:
        """Whether the provider answers; a model built by a factory has no cheap probe."""
        return True

    async def _answers(self, url: str, headers: Mapping[str, str]) -> bool:
        """Whether `url` answers a GET with any status below 500."""
        if self._probe is None:
            self._probe = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=min(_PROBE_TIMEOUT_S, self._timeout_s))
            )
        try:
            async with self._probe.get(url, headers=dict(headers)) as resp:
                return resp.status < 500
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def aclose(self) -> None:
        """Close the readiness probe's session and every model's clients."""
        if self._probe is not None:
            await self._probe.close()
            self._probe = None
        models, self._models = list(self._models.values()), {}
        for model in models:
            await dialect_of(model).close(model)


def _block_reason(reply: AIMessage) -> Any:
    """Why the provider refused the prompt (Gemini's `promptFeedback.blockReason`), if it did."""
    feedback = reply.response_metadata.get("prompt_feedback") or {}
    return feedback.get("block_reason") if isinstance(feedback, dict) else None


def prompt_blocked(reply: AIMessage) -> bool:
    """Whether the provider refused the prompt itself, answering nothing."""
    return bool(_block_reason(reply))


def finish_reason(reply: AIMessage) -> str:
    """The reply's finish reason, lower-cased; a refused prompt's block reason instead."""
    meta = reply.response_metadata
    blocked = _block_reason(reply)
    if blocked:
        # Gemini refused the prompt itself: no candidate, so no finish reason.
        return _lower(blocked)
    for key in _FINISH_KEYS:
        if meta.get(key):
            return _lower(meta[key])
    return "unknown"


def usage(reply: AIMessage) -> Usage:
    """Token counts of the reply (zeros when the provider reported none)."""
    meta = reply.usage_metadata
    if meta is None:
        return Usage(input_tokens=0, output_tokens=0, total_tokens=0)
    return Usage(
        input_tokens=meta["input_tokens"],
        output_tokens=meta["output_tokens"],
        total_tokens=meta["total_tokens"],
    )


def estimate_tokens(conversation: tuple[Message, ...]) -> int:
    """A rough token count of `conversation` (about four characters a token)."""
    return max(1, -(-sum(len(m.content) for m in conversation) // 4))


def _lower(value: Any) -> str:
    # Gemini reports enums (FinishReason.STOP), OpenAI plain strings ("content_filter").
    return str(getattr(value, "value", value)).lower()
