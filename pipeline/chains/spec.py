"""A chain as config/chains/*.toml defines it: named steps, each reading named values.

A value is a chain input, a step's output, or (inside a map) the item and its index. A
source names one (`"plan"`), or a field of a JSON one (`"check.verdict"`). Steps run when
their output is needed: a branch runs only the case it picks, a map's step runs per item.
"""

from dataclasses import dataclass
from typing import Any, Final, Literal

from langchain_core.prompts import ChatPromptTemplate

# The names a map's step may read besides the chain's values: the item and its position.
ITEM: Final = "item"
INDEX: Final = "index"
STEP_TAG: Final = "promptbus.step:"
TransformOp = Literal["split", "lines", "join", "pick", "equals", "object"]


@dataclass(frozen=True, slots=True)
class Source:
    """A value a step reads: `name`, or the field `path` of its JSON."""

    name: str
    path: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "Source":
        """`"name"` or `"name.field.sub"`."""
        name, *path = text.split(".")
        return cls(name, tuple(path))

    def __str__(self) -> str:
        return ".".join((self.name, *self.path))


@dataclass(frozen=True, slots=True)
class LlmStep:
    """A model call: a prompt filled from sources, answered as text or (with a schema) JSON."""

    name: str
    model: str
    prompt: ChatPromptTemplate
    # Each placeholder of the prompt, and the source it is filled from.
    inputs: dict[str, Source]
    response_schema: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    template: tuple[str, int] | None = None
    kind: Literal["llm"] = "llm"


@dataclass(frozen=True, slots=True)
class MapStep:
    """`step` run over each item of the list `over`, at most `max_concurrency` at once."""

    name: str
    over: Source
    step: str
    max_concurrency: int
    kind: Literal["map"] = "map"


@dataclass(frozen=True, slots=True)
class BranchStep:
    """The step `cases` names for the value of `on` (else `default`); its output is this one's."""

    name: str
    on: Source
    cases: dict[str, str]
    default: str
    kind: Literal["branch"] = "branch"


@dataclass(frozen=True, slots=True)
class ReduceStep:
    """The list `over` as one text: each item formatted, joined by `separator`."""

    name: str
    over: Source
    item_format: str
    separator: str
    kind: Literal["reduce"] = "reduce"


@dataclass(frozen=True, slots=True)
class TransformStep:
    """A deterministic step, no model: split, lines, join, pick, equals or object.

    `fields` (object) maps each key to a source or, for a non-string, a literal value.
    """

    name: str
    op: TransformOp
    input: Source | None = None
    chunk_chars: int = 2000
    overlap_chars: int = 200
    separator: str = "\n\n"
    value: str | None = None
    fields: dict[str, Source | bool | int | float] | None = None
    kind: Literal["transform"] = "transform"


Step = LlmStep | MapStep | BranchStep | ReduceStep | TransformStep


@dataclass(frozen=True, slots=True, eq=False)
class ChainVersion:
    """One version of a chain: its inputs, its steps by name, and the step whose output it is."""

    id: str
    version: int
    description: str
    inputs: tuple[str, ...]
    output: str
    steps: dict[str, Step]
    # Written in Python (pipeline/chains/custom.py): its steps are its own, its input too.
    custom: bool = False


def sources_of(step: Step) -> list[Source]:
    """The values `step` reads itself (a branch's cases and a map's step are run, not read)."""
    match step:
        case LlmStep():
            return list(step.inputs.values())
        case MapStep() | ReduceStep():
            return [step.over]
        case BranchStep():
            return [step.on]
        case TransformStep():
            found = [] if step.input is None else [step.input]
            return found + [v for v in (step.fields or {}).values() if isinstance(v, Source)]


def runs_of(step: Step) -> list[str]:
    """The steps `step` runs on its own terms: a branch's cases, a map's step."""
    match step:
        case BranchStep():
            return [*step.cases.values(), step.default]
        case MapStep():
            return [step.step]
        case _:
            return []
