"""Chains on the wire: what GET /v1/chains lists, what an invocation sends and gets back,
and a chain run as a job: its steps' states and the `chain.step` events."""

from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import Field

from schemas._base import Envelope
from schemas.errors import ErrorDetail
from schemas.generate import CacheControl, Message, SessionId

CHAIN_STEP_SCHEMA: Final = "promptbus.chain.step/v1"
ChainId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]


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
    session_id: SessionId | None = Field(
        default=None,
        description="A kept conversation: its history goes before the chain's first model "
        "call, and the chain's input and output are kept as a turn once it succeeds",
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


class ChainRef(Envelope):
    """A chain to run as a job (POST /v1/jobs `chain`): id, version (omitted: the newest)."""

    id: ChainId
    version: int | None = Field(default=None, ge=1)
    variables: dict[str, Any] = Field(default_factory=dict)


class StepState(StrEnum):
    """Where one step of a chain job is: pending -> running -> succeeded | failed; a step the
    chain did not need (a branch's other cases) ends skipped."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class ChainStepStatus(Envelope):
    """One step of a chain job: its state and, for a map, how many of its items are done."""

    name: str
    kind: str
    state: StepState = StepState.PENDING
    items: int | None = Field(default=None, ge=0, description="A map's items, once known")
    items_done: int | None = Field(default=None, ge=0)
    error: ErrorDetail | None = None


class ChainRun(Envelope):
    """A chain running as a job: its version, variables, each step's state (in the chain's
    order), the values of the steps done and the model calls made."""

    id: str
    version: int
    variables: dict[str, Any]
    cache: CacheControl = CacheControl()
    history: tuple[Message, ...] = Field(
        default=(), description="Its session's kept turns, sent before its first llm step's"
    )
    summary: str | None = Field(default=None, description="Its session's running summary")
    steps: tuple[ChainStepStatus, ...]
    values: dict[str, Any] = Field(default_factory=dict, description="Step values, by name")
    items: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="A running map's item values, by step, then index"
    )
    calls: tuple[ChainCall, ...] = ()
    output: Any = None

    def status(self, name: str) -> ChainStepStatus:
        """The status of the step `name`."""
        return next(step for step in self.steps if step.name == name)


class ChainStepEvent(Envelope):
    """A step of a chain job changed state, as published on `promptbus.completions`
    (routing key `chain.step`)."""

    schema_: Literal["promptbus.chain.step/v1"] = Field(default=CHAIN_STEP_SCHEMA, alias="schema")
    type: Literal["chain.step"] = "chain.step"
    job_id: str
    correlation_id: str
    tenant: str
    chain: str
    version: int
    step: str
    kind: str
    state: StepState
    error: ErrorDetail | None = None
    at: float = Field(description="Unix time of the change")
