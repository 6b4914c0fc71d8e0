"""A LangChain chat model whose every call takes promptbus's own path.

`PromptbusChatModel(model="flash")` is an ordinary `BaseChatModel`: a chain (config-defined
or a custom one in Python) composes it like any other. Its calls go to the gateway of the
invocation running it (`using_gateway`), which answers them the way promptbus answers a
request (cache, coalescing, routing, retries, rate limits, budgets, the usage ledger) for
the tenant that invoked the chain.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from schemas import GenerateRequest, GenerateResponse, GenerationParams, Message, Role

_ROLES = {"system": Role.SYSTEM, "human": Role.USER, "ai": Role.ASSISTANT}


class ChainGateway(Protocol):
    """Answers a chain's model calls for the caller that invoked it."""

    async def generate(self, request: GenerateRequest, *, step: str | None) -> GenerateResponse:
        """The answer to `request`, made by the step named `step` (None: a custom chain's)."""
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
        """Answer through the invocation's gateway.

        Bound keyword arguments: `step` (the chain step calling), `params` (generation
        parameters), `response_schema` (the answer is JSON, parsed, in `response_metadata`).
        """
        gateway = _GATEWAY.get()
        if gateway is None:
            raise RuntimeError("PromptbusChatModel runs only within a promptbus chain invocation")
        params = dict(kwargs.get("params") or {})
        if stop:
            params["stop"] = tuple(stop)
        request = GenerateRequest(
            model=self.model,
            messages=_ours(messages),
            params=GenerationParams.model_validate(params),
            response_schema=kwargs.get("response_schema"),
        )
        response = await gateway.generate(request, step=kwargs.get("step"))
        message = AIMessage(
            content=response.text,
            response_metadata={
                "model": response.provider_model,
                "finish_reason": response.finish_reason,
                "json": response.json_,
                "cache_hit": response.cache.hit,
                "cost_usd": response.cost.total_usd,
            },
            usage_metadata={
                "input_tokens": response.usage.input_tokens,
                "output_tokens": response.usage.output_tokens,
                "total_tokens": response.usage.total_tokens,
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def _ours(messages: Sequence[BaseMessage]) -> tuple[Message, ...]:
    """LangChain's messages as promptbus's: system, user and assistant turns of text."""
    converted = []
    for message in messages:
        role = _ROLES.get(message.type)
        if role is None:
            raise ValueError(f"a {message.type} message cannot go to PromptbusChatModel")
        converted.append(Message(role=role, content=message.text))
    return tuple(converted)
