"""What differs between LangChain chat model families: parameters, JSON mode, tools, safety
settings, token counts, closing.

The shared provider asks `dialect_of(model)` and never looks at a model's class itself, so
a custom provider whose factory returns a `ChatOpenAI` or a `ChatGoogleGenerativeAI` gets
that family's JSON mode and parameter names for free.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from google.genai.types import Content, HarmBlockThreshold, HarmCategory, Part
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage
from langchain_core.runnables import Runnable
from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_openai import ChatOpenAI

from pipeline.errors import ValidationFailed
from schemas import GenerationParams, Message, Role, SafetySetting, Tool, ToolChoice

# A model with tools bound: what `bind_tools` hands back, called like the model itself.
BoundModel = Runnable[LanguageModelInput, AIMessage]
ToolBinder = Callable[[BaseChatModel, tuple[Tool, ...], ToolChoice | None, bool | None], BoundModel]

# The name OpenAI's json_schema response format requires; any name will do.
SCHEMA_NAME: Final = "response"


@dataclass(frozen=True, slots=True)
class JsonMode:
    """How to ask a model for JSON: extra call kwargs and/or a system instruction."""

    kwargs: dict[str, Any]
    instruction: str | None = None


def _no_safety(settings: tuple[SafetySetting, ...]) -> dict[str, Any]:
    # Safety settings are Gemini's; other families have no such parameter.
    return {}


async def _no_count(model: BaseChatModel, conversation: tuple[Message, ...]) -> int | None:
    # ChatOpenAI counts with tiktoken, which downloads its encodings and fits OpenAI's models
    # only (not vLLM's or Ollama's); the provider estimates instead.
    return None


@dataclass(frozen=True, slots=True)
class Dialect:
    """One family's ways: call kwargs, JSON mode for a schema, tools, and closing.

    `bind_tools(model, tools, tool_choice, parallel_tool_calls)` is the model with tools
    bound; `user_kwargs(user)` the call kwargs naming the end user, where the family has
    them. `invents_tool_call_ids`: the client makes up a UUID4 for a tool call the provider
    sent without an id (promptbus then makes a deterministic one instead). `safety(settings)`
    the call kwargs carrying safety settings; `count_tokens(model, conversation)` the
    family's own count of the input tokens (None: it has none).
    """

    name: str
    call_kwargs: Callable[[GenerationParams], dict[str, Any]]
    json_mode: Callable[[dict[str, Any]], JsonMode]
    close: Callable[[BaseChatModel], Awaitable[None]]
    bind_tools: ToolBinder
    user_kwargs: Callable[[str], dict[str, Any]]
    invents_tool_call_ids: bool = False
    safety: Callable[[tuple[SafetySetting, ...]], dict[str, Any]] = _no_safety
    count_tokens: Callable[[BaseChatModel, tuple[Message, ...]], Awaitable[int | None]] = _no_count


def _no_user(user: str) -> dict[str, Any]:
    # Gemini's API, and LangChain's chat models in general, have no end-user field.
    return {}


def _function_tools(tools: tuple[Tool, ...]) -> list[dict[str, Any]]:
    """Tools as OpenAI's function tools, the form every LangChain `bind_tools` reads."""
    return [{"type": "function", "function": t.model_dump(exclude_none=True)} for t in tools]


def _gemini_kwargs(params: GenerationParams) -> dict[str, Any]:
    # ChatGoogleGenerativeAI takes Gemini's own names: top_k, max_output_tokens and seed
    # (GenerateContentConfig's) included.
    kwargs: dict[str, Any] = params.model_dump(exclude_none=True)
    if "stop" in kwargs:
        kwargs["stop"] = list(kwargs["stop"])
    return kwargs


def _gemini_json(schema: dict[str, Any]) -> JsonMode:
    return JsonMode({"response_mime_type": "application/json", "response_json_schema": schema})


def _gemini_tools(
    model: BaseChatModel, tools: tuple[Tool, ...], choice: ToolChoice | None, parallel: bool | None
) -> BoundModel:
    # Gemini's modes are AUTO, ANY and NONE, and a name means ANY limited to that function;
    # it has no switch for parallel calls, so `parallel` has nothing to set.
    gemini_choice = "any" if choice == "required" else choice
    return model.bind_tools(_function_tools(tools), tool_choice=gemini_choice)


def _gemini_safety(settings: tuple[SafetySetting, ...]) -> dict[str, Any]:
    # ChatGoogleGenerativeAI takes them at call time as {HarmCategory: HarmBlockThreshold}.
    return {
        "safety_settings": {
            HarmCategory(s.category): HarmBlockThreshold(s.threshold) for s in settings
        }
    }


async def _gemini_count(model: BaseChatModel, conversation: tuple[Message, ...]) -> int | None:
    # ChatGoogleGenerativeAI.get_num_tokens makes this same countTokens call, but only on the
    # SDK's sync client (one text, no roles); the model's async client keeps the loop free.
    # The Developer API counts no system instruction: a system text counts as a user turn,
    # and so does a tool's result; only text is counted.
    if not isinstance(model, ChatGoogleGenerativeAI) or model.client is None:
        return None
    contents = [
        Content(role="model" if m.role is Role.ASSISTANT else "user", parts=[Part(text=m.content)])
        for m in conversation
        if m.content
    ]
    counted = await model.client.aio.models.count_tokens(model=model.model, contents=contents)
    return counted.total_tokens


async def _gemini_close(model: BaseChatModel) -> None:
    client = getattr(model, "client", None)
    if client is not None:
        # Not model.aclose(): that insists on the loop of the first call, and a Celery
        # worker's loop may differ from the one stopping the runtime.
        client.close()  # the SDK's sync transport (built even when unused)
        await client.aio.aclose()


def _openai_kwargs(params: GenerationParams) -> dict[str, Any]:
    # OpenAI's API has no top_k (it rejects unknown fields); max_tokens is sent as
    # max_completion_tokens by ChatOpenAI.
    kwargs: dict[str, Any] = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_output_tokens,
        "stop": list(params.stop) if params.stop else None,
        "seed": params.seed,
    }
    return {k: v for k, v in kwargs.items() if v is not None}


def _openai_user(user: str) -> dict[str, Any]:
    return {"user": user}


def _openai_json(schema: dict[str, Any]) -> JsonMode:
    # strict=False: OpenAI's strict mode accepts only a subset of JSON Schema, and the
    # structured-output step validates (and repairs) the answer anyway.
    json_schema = {"name": SCHEMA_NAME, "schema": schema, "strict": False}
    return JsonMode({"response_format": {"type": "json_schema", "json_schema": json_schema}})


def _openai_tools(
    model: BaseChatModel, tools: tuple[Tool, ...], choice: ToolChoice | None, parallel: bool | None
) -> BoundModel:
    # ChatOpenAI turns a tool's name into {"type": "function", "function": {"name": ...}}
    # and passes "auto", "none" and "required" as they are.
    return model.bind_tools(
        _function_tools(tools), tool_choice=choice, parallel_tool_calls=parallel
    )


async def _openai_close(model: BaseChatModel) -> None:
    async_client = getattr(model, "root_async_client", None)
    if async_client is not None:
        await async_client.close()
    sync_client = getattr(model, "root_client", None)
    if sync_client is not None:
        sync_client.close()


def _generic_kwargs(params: GenerationParams) -> dict[str, Any]:
    # `stop` is the one parameter every LangChain chat model takes at call time; the
    # factory configures anything else on the model it builds.
    return {"stop": list(params.stop)} if params.stop else {}


def _generic_json(schema: dict[str, Any]) -> JsonMode:
    # A model family promptbus does not know has no JSON mode it can name: ask in words.
    text = orjson.dumps(schema).decode()
    return JsonMode(
        {},
        "Answer with one JSON value only, no prose and no code fence, that validates "
        f"against this JSON Schema: {text}",
    )


def _generic_tools(
    model: BaseChatModel, tools: tuple[Tool, ...], choice: ToolChoice | None, parallel: bool | None
) -> BoundModel:
    # The base class's bind_tools only raises NotImplementedError: a family that cannot take
    # tools is refused before any call. `parallel` has no name common to every family.
    if type(model).bind_tools is BaseChatModel.bind_tools:
        raise ValidationFailed(
            f"model class {type(model).__name__} does not support tools", field="tools"
        )
    return model.bind_tools(_function_tools(tools), tool_choice=choice)


async def _generic_close(model: BaseChatModel) -> None:
    return None


GEMINI: Final = Dialect(
    "gemini",
    _gemini_kwargs,
    _gemini_json,
    _gemini_close,
    bind_tools=_gemini_tools,
    user_kwargs=_no_user,
    invents_tool_call_ids=True,
    safety=_gemini_safety,
    count_tokens=_gemini_count,
)
OPENAI: Final = Dialect(
    "openai",
    _openai_kwargs,
    _openai_json,
    _openai_close,
    bind_tools=_openai_tools,
    user_kwargs=_openai_user,
)
GENERIC: Final = Dialect(
    "generic",
    _generic_kwargs,
    _generic_json,
    _generic_close,
    bind_tools=_generic_tools,
    user_kwargs=_no_user,
)


def dialect_of(model: BaseChatModel) -> Dialect:
    """The dialect `model` speaks, by its LangChain class."""
    if isinstance(model, ChatGoogleGenerativeAI):
        return GEMINI
    if isinstance(model, ChatOpenAI):
        return OPENAI
    return GENERIC
