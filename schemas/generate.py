"""The generate request and response: what a caller sends and what it gets back."""

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from schemas._base import Envelope

# Bounds keep a single request from pinning the process; the body limit bounds bytes.
MAX_MESSAGES = 256
MAX_TEXT_CHARS = 200_000
MAX_TTL_SECONDS = 30 * 24 * 3600

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]


class Role(StrEnum):
    """Who speaks in a chat message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class Message(Envelope):
    """One chat message."""

    role: Role
    content: Text


class GenerationParams(Envelope):
    """Sampling parameters passed to the model."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=1, le=1000)
    max_output_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    stop: tuple[Annotated[str, Field(min_length=1, max_length=256)], ...] | None = Field(
        default=None, max_length=16
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


TemplateId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
TemplateValue = Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | int | float | bool


class TemplateRef(Envelope):
    """A named, versioned prompt template from config/templates/ and its variables."""

    id: TemplateId
    version: int | None = Field(default=None, ge=1, description="Omitted: the newest version")
    variables: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")], TemplateValue
    ] = Field(default_factory=dict, max_length=64)


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

    @model_validator(mode="after")
    def _one_input(self) -> "GenerateRequest":
        given = [self.prompt is not None, self.messages is not None, self.template is not None]
        expanded = self.template is not None and self.messages is not None
        if sum(given) != 1 and not (expanded and self.prompt is None):
            raise ValueError("give exactly one of 'prompt', 'messages' or 'template'")
        if self.system is not None and self.prompt is None:
            raise ValueError("'system' goes with 'prompt'; use a system message instead")
        if self.messages is not None and self.messages[-1].role is not Role.USER:
            raise ValueError("the last message must have role 'user'")
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
