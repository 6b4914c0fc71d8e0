"""Chains on the wire: what GET /v1/chains lists, what an invocation sends and gets back."""

from typing import Any, Literal

from pydantic import Field

from schemas._base import Envelope
from schemas.generate import CacheControl


class ChainStepInfo(Envelope):
    """One step of a chain: its name and kind (llm, map, branch, reduce, transform)."""

    name: str
    kind: str


class ChainInfo(Envelope):
    """One version of a chain, the variables an invocation must give it, and its steps."""

    id: str
    version: int = Field(ge=1)
    description: str
    inputs: tuple[str, ...] = Field(description="Every variable the version takes")
    output: str = Field(description="The step whose value is the chain's output")
    steps: tuple[ChainStepInfo, ...]


class ChainList(Envelope):
    """Chain versions, sorted by id, then version."""

    data: tuple[ChainInfo, ...]


class ChainInvocation(Envelope):
    """POST /v1/chains/{id}/invoke: a version (omitted: the newest), its variables."""

    version: int | None = Field(default=None, ge=1)
    variables: dict[str, Any] = Field(default_factory=dict)
    cache: CacheControl = Field(
        default=CacheControl(), description="Applied to every model call of the chain"
    )
    stream: bool = Field(
        default=False,
        description="Send `step` events as steps start and finish, `delta`s of the output "
        "step's text, then `done` (the result) or `error`",
    )


class ChainCall(Envelope):
    """One model call a chain made: which step, what answered, and what it cost."""

    step: str | None = Field(default=None, description="The step; None for a custom chain's")
    model: str
    provider_model: str
    cache_hit: bool
    coalesced: bool
    input_tokens: int
    output_tokens: int
    cost_usd: float
    saved_usd: float = Field(default=0.0, description="What a shared (cached) answer saved")


class ChainUsage(Envelope):
    """What the whole invocation spent, and what the cache saved it."""

    calls: int
    cache_hits: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    saved_usd: float


class ChainResult(Envelope):
    """A chain's answer: its output, the value of each step that ran at its top level, and
    every model call it made."""

    id: str
    object: Literal["chain.result"] = "chain.result"
    chain: str
    version: int
    output: Any
    steps: dict[str, Any] = Field(description="Values of the steps that ran, by name")
    calls: tuple[ChainCall, ...]
    usage: ChainUsage
