"""A LangChain chat model whose every call takes promptbus's own path.

`PromptbusChatModel(model="flash")` is an ordinary `BaseChatModel`: a chain (config-defined
or a custom one in Python) composes it like any other. Its calls go to the gateway of the
invocation running it (`using_gateway`), which answers them the way promptbus answers a
request (cache, coalescing, routing, retries, rate limits, budgets, the usage ledger) for
the tenant that invoked the chain.
"""

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel, agenerate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from schemas import GenerateRequest, GenerateResponse, GenerationParams, Message, Role

_ROLES = {"system": Role.SYSTEM, "human": Role.USER, "ai": Role.ASSISTANT}


class ChainGateway(Protocol):
    """Answers a chain's model calls for the caller that invoked it.

    `streaming`: the invocation is streamed, so every call is too (its tokens reach the
    callbacks as they come, whichever way the chain calls the model).
    """

    streaming: bool

    async def generate(self, request: GenerateRequest, *, step: str | None) -> GenerateResponse:
        """The answer to `request`, made by the step named `step` (None: a custom chain's)."""
        ...

    def stream(
        self, request: GenerateRequest, *, step: str | None
    ) -> AsyncIterator[str | GenerateResponse]:
        """The answer's text deltas as they come, then the whole answer."""
        ...


_GATEWAY: ContextVar[ChainGateway | None] = ContextVar("promptbus_chain_gateway", default=None)


@contextmanager
def using_gateway(gateway: ChainGateway) -> Iterator[None]:
    """Run the chat models called within (and the tasks they start) through `gateway`."""
    token = _GATEWAY.set(gateway)
    try:
        yield
    finally:
        _GATEWAY.reset(token)


class PromptbusChatModel(BaseChatModel):
    """A chat model over one of promptbus's models or routes (config/models.toml)."""

    model: str

    @property
    def _llm_type(self) -> str:
        return "promptbus"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError("PromptbusChatModel answers asynchronously: use ainvoke")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Answer through the invocation's gateway (streamed when the invocation is).

        Bound keyword arguments: `step` (the chain step calling), `params` (generation
        parameters), `response_schema` (the answer is JSON, parsed, in `response_metadata`).
        """
        request = self._request(messages, stop, kwargs)
        gateway = _gateway()
        if gateway.streaming and request.response_schema is None:
            return await agenerate_from_stream(self._astream(messages, stop, run_manager, **kwargs))
        response = await gateway.generate(request, step=kwargs.get("step"))
        message = AIMessage(
            content=response.text,
            response_metadata=_metadata(response),
            usage_metadata=_usage(response),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Stream through the invocation's gateway: text deltas, then a closing chunk with the
        answer's metadata and usage. A structured answer (JSON, checked whole) is one chunk."""
        gateway, step = _gateway(), kwargs.get("step")
        request = self._request(messages, stop, kwargs)
        if request.response_schema is not None:
            whole = await gateway.generate(request, step=step)
            yield _closing(whole, whole.text)
            return
        async for piece in gateway.stream(request.model_copy(update={"stream": True}), step=step):
            if isinstance(piece, GenerateResponse):
                yield _closing(piece, "")
                continue
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager is not None:
                await run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> GenerateRequest:
        params = dict(kwargs.get("params") or {})
        if stop:
            params["stop"] = tuple(stop)
        return GenerateRequest(
            model=self.model,
            messages=_ours(messages),
            params=GenerationParams.model_validate(params),
            response_schema=kwargs.get("response_schema"),
        )


def _closing(response: GenerateResponse, content: str) -> ChatGenerationChunk:
    """The chunk that ends a stream: the answer's metadata and usage (and `content`)."""
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content=content, response_metadata=_metadata(response), usage_metadata=_usage(response)
        )
    )


def _gateway() -> ChainGateway:
    gateway = _GATEWAY.get()
    if gateway is None:
        raise RuntimeError("PromptbusChatModel runs only within a promptbus chain invocation")
    return gateway


def _metadata(response: GenerateResponse) -> dict[str, Any]:
    return {
        "model": response.provider_model,
        "finish_reason": response.finish_reason,
        "json": response.json_,
        "cache_hit": response.cache.hit,
        "cost_usd": response.cost.total_usd,
    }


def _usage(response: GenerateResponse) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=response.usage.input_tokens,
        output_tokens=response.usage.output_tokens,
        total_tokens=response.usage.total_tokens,
    )


def _ours(messages: Sequence[BaseMessage]) -> tuple[Message, ...]:
    """LangChain's messages as promptbus's: system, user and assistant turns of text."""
    converted = []
    for message in messages:
        role = _ROLES.get(message.type)
        if role is None:
            raise ValueError(f"a {message.type} message cannot go to PromptbusChatModel")
        converted.append(Message(role=role, content=message.text))
    return tuple(converted)
