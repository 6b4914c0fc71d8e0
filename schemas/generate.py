"""The generate request and response: what a caller sends and what it gets back."""

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from schemas._base import Envelope

# Bounds keep a single request from pinning the process; the body limit bounds bytes.
MAX_MESSAGES = 256
MAX_TEXT_CHARS = 200_000
MAX_TTL_SECONDS = 30 * 24 * 3600
MAX_TOOLS = 128
MAX_TOOL_CALLS = 64

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
ToolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
# "auto", "none" and "required" always mean the mode, never a tool of that name.
ToolChoice = Literal["auto", "none", "required"] | ToolName


class Role(StrEnum):
    """Who speaks in a chat message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class ToolCall(Envelope):
    """A call the model asks the caller to make: a tool's name and its arguments."""

    id: Annotated[str, Field(min_length=1, max_length=128)]
    name: ToolName
    arguments: dict[str, Any] = Field(default_factory=dict)


class Tool(Envelope):
    """A function the model may call."""

    name: ToolName
    description: Annotated[str, Field(max_length=4096)] | None = None
    parameters: dict[str, Any] | None = Field(
        default=None, description="A JSON Schema of the arguments, an object"
    )

    @field_validator("parameters")
    @classmethod
    def _an_object(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type", "object") != "object":
            raise ValueError("a tool's parameters must describe an object ('type': 'object')")
        return value


class Message(Envelope):
    """One chat message: text, an assistant's tool calls, or a tool's result."""

    role: Role
    content: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] = Field(
        default="", description="Empty only on an assistant message with tool_calls"
    )
    tool_calls: tuple[ToolCall, ...] | None = Field(
        default=None, min_length=1, max_length=MAX_TOOL_CALLS, description="Assistant only"
    )
    tool_call_id: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        default=None, description="The call a tool message answers; tool messages only"
    )

    @model_validator(mode="after")
    def _shape(self) -> "Message":
        if self.tool_calls is not None and self.role is not Role.ASSISTANT:
            raise ValueError("only an assistant message may have 'tool_calls'")
        if (self.tool_call_id is None) is (self.role is Role.TOOL):
            raise ValueError("'tool_call_id' is required on a tool message, and only there")
        if not self.content and self.tool_calls is None:
            raise ValueError("'content' may be empty only on an assistant message with tool_calls")
        return self


class GenerationParams(Envelope):
    """Sampling parameters passed to the model."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=1, le=1000)
    max_output_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    stop: tuple[Annotated[str, Field(min_length=1, max_length=256)], ...] | None = Field(
        default=None, max_length=16
    )
    seed: int | None = Field(
        default=None, ge=-(2**63), lt=2**63, description="Best-effort determinism"
    )


HarmName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]


class SafetySetting(Envelope):
    """A Gemini safety setting: block content of `category` at `threshold` and above."""

    category: HarmName = Field(description="e.g. HARM_CATEGORY_HARASSMENT")
    threshold: HarmName = Field(description="e.g. BLOCK_ONLY_HIGH, BLOCK_NONE, OFF")


class CacheControl(Envelope):
    """Per-request cache controls."""

    ttl: int | None = Field(default=None, ge=1, le=MAX_TTL_SECONDS, description="Seconds to keep")
    no_cache: bool = Field(default=False, description="Skip the lookup; still store the answer")
    no_store: bool = Field(default=False, description="Do not store the answer")
    max_age: int | None = Field(
        default=None, ge=0, description="Accept a cached answer only if at most this many s old"
    )


SessionId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
TemplateId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
TemplateValue = Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | int | float | bool


class TemplateRef(Envelope):
    """A named, versioned prompt template from config/templates/ and its variables."""

    id: TemplateId
    version: int | None = Field(default=None, ge=1, description="Omitted: the newest version")
    variables: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")], TemplateValue
    ] = Field(default_factory=dict, max_length=64)


# The turns a model answers: a question, or the result of a tool it called.
_LAST_ROLES = frozenset({Role.USER, Role.TOOL})


class GenerateRequest(Envelope):
    """A request for one model answer: a prompt, a list of messages or a template.

    A template request is expanded on arrival: its rendered conversation is added as
    `messages` and `template.version` is pinned, and from then on both travel together.
    """

    model: Annotated[str, Field(min_length=1, max_length=128)]
    prompt: Text | None = None
    system: Text | None = None
    messages: tuple[Message, ...] | None = Field(
        default=None, min_length=1, max_length=MAX_MESSAGES
    )
    template: TemplateRef | None = None
    response_schema: dict[str, Any] | None = Field(
        default=None, description="A JSON Schema the answer must match; the answer is JSON"
    )
    params: GenerationParams = GenerationParams()
    safety_settings: tuple[SafetySetting, ...] | None = Field(
        default=None,
        max_length=16,
        description="Gemini safety settings, sent to Gemini deployments; others ignore them",
    )
    cache: CacheControl = CacheControl()
    stream: bool = Field(
        default=False,
        description="Send the answer as Server-Sent Events, a delta at a time (a job: "
        "publish its deltas as completion.delta events)",
    )
    tools: tuple[Tool, ...] | None = Field(
        default=None, min_length=1, max_length=MAX_TOOLS, description="Functions the model may call"
    )
    tool_choice: ToolChoice | None = Field(
        default=None, description="'auto', 'none', 'required' or the name of a tool to call"
    )
    parallel_tool_calls: bool | None = Field(
        default=None, description="Whether the model may call several tools at once"
    )
    user: Annotated[str, Field(max_length=256)] | None = Field(
        default=None,
        description="The end user, for providers that take one; not part of the cache key",
    )
    session_id: SessionId | None = Field(
        default=None,
        description="A conversation kept server-side: its recent turns are sent before this "
        "one, and this turn is kept after a good answer (the cache key covers the history sent)",
    )

    @field_validator("messages")
    @classmethod
    def _tool_results_answer_calls(
        cls, messages: tuple[Message, ...] | None
    ) -> tuple[Message, ...] | None:
        called: set[str] = set()
        for index, message in enumerate(messages or ()):
            for call in message.tool_calls or ():
                if call.id in called:
                    raise ValueError(f"messages[{index}]: tool call id {call.id!r} is used twice")
                called.add(call.id)
            if message.tool_call_id is not None and message.tool_call_id not in called:
                raise ValueError(
                    f"messages[{index}]: tool_call_id {message.tool_call_id!r} answers no tool "
                    "call of an earlier assistant message"
                )
        return messages

    @field_validator("tools")
    @classmethod
    def _distinct_tools(
        cls, tools: tuple[Tool, ...] | None, info: ValidationInfo
    ) -> tuple[Tool, ...] | None:
        names = [tool.name for tool in tools or ()]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"tool names must be distinct; given more than once: {twice}")
        if tools is not None and info.data.get("response_schema") is not None:
            # A structured answer is checked as JSON text, and a tool call has none.
            raise ValueError("'tools' cannot be combined with 'response_schema'")
        return tools

    @field_validator("tool_choice", "parallel_tool_calls")
    @classmethod
    def _with_tools(cls, value: object, info: ValidationInfo) -> object:
        if value is None or "tools" not in info.data:
            return value  # absent from `info.data`: tools were invalid, and say so themselves
        tools: tuple[Tool, ...] | None = info.data["tools"]
        if not tools:
            raise ValueError(f"'{info.field_name}' goes with 'tools', and none were given")
        modes = ("auto", "none", "required")
        named = info.field_name == "tool_choice" and value not in modes
        if named and value not in {tool.name for tool in tools}:
            raise ValueError(f"tool_choice {value!r} names none of the tools")
        return value

    @model_validator(mode="after")
    def _one_input(self) -> "GenerateRequest":
        given = [self.prompt is not None, self.messages is not None, self.template is not None]
        expanded = self.template is not None and self.messages is not None
        if sum(given) != 1 and not (expanded and self.prompt is None):
            raise ValueError("give exactly one of 'prompt', 'messages' or 'template'")
        if self.system is not None and self.prompt is None:
            raise ValueError("'system' goes with 'prompt'; use a system message instead")
        if self.messages is not None and self.messages[-1].role not in _LAST_ROLES:
            raise ValueError("the last message must have role 'user' or 'tool'")
        return self

    @property
    def expanded(self) -> bool:
        """Whether the request holds its conversation (a template request once rendered)."""
        return self.prompt is not None or self.messages is not None

    def conversation(self) -> tuple[Message, ...]:
        """The request as one list of messages."""
        if self.messages is not None:
            return self.messages
        if self.prompt is None:
            raise ValueError("a template request must be expanded before it is sent")
        head = (Message(role=Role.SYSTEM, content=self.system),) if self.system else ()
        return (*head, Message(role=Role.USER, content=self.prompt))


class Usage(Envelope):
    """Tokens the answer took."""

    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)


class Cost(Envelope):
    """What the answer cost at the model's list price, in US dollars."""

    input_usd: float = Field(ge=0)
    output_usd: float = Field(ge=0)
    total_usd: float = Field(ge=0)


class CacheInfo(Envelope):
    """Whether the answer came from the cache, and from which tier."""

    hit: bool
    tier: Literal["l1", "l2"] | None = None
    key: str
    age_s: float | None = Field(default=None, ge=0, description="Seconds since it was stored")
    stored: bool = Field(default=False, description="Whether this answer was stored")
    coalesced: bool = Field(default=False, description="Shared with an identical request")
    ttl_s: int | None = None


class RoutingInfo(Envelope):
    """Which deployment answered, and what it took to get there."""

    deployment: str = Field(description="provider/model of the deployment that answered")
    attempts: int = Field(ge=1, description="Upstream calls made for this answer, in all")
    fallbacks: tuple[str, ...] = Field(
        default=(), description="Deployments that failed before, in the order tried"
    )
    strategy: str | None = None


class GenerateResponse(Envelope):
    """One model answer, with usage, cost and provenance."""

    id: str
    model: str = Field(description="The model as the request named it")
    provider_model: str = Field(description="The provider's model that answered")
    provider: str
    text: str
    tool_calls: tuple[ToolCall, ...] = Field(
        default=(), description="The tools the model asks the caller to call, in order"
    )
    finish_reason: str
    usage: Usage
    cost: Cost
    cache: CacheInfo
    routing: RoutingInfo | None = None
    json_: Any = Field(
        default=None,
        alias="json",
        description="The parsed answer when the request gave a response_schema",
    )
    created: float = Field(description="Unix time the answer was generated")
    metadata: dict[str, Any] = Field(default_factory=dict)
