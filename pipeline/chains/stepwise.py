"""A chain run a step at a time, from the values recorded so far: how a chain job runs, each
step a Celery task of its own (pipeline/worker/chain_driver.py).

`next_step` names the step to run next on the way to the chain's output: the first one,
in the chain's order, that is needed and whose reads are all known. A branch runs once the
case it picks is known, a map once its list and what its step reads (besides the item) are.
A step that nothing on the way to the output needs never runs, as in the Runnable.
"""

from collections.abc import Mapping
from typing import Any

from pipeline.chains.build import llm_runnable
from pipeline.chains.graph import dependencies
from pipeline.chains.spec import (
    INDEX,
    ITEM,
    BranchStep,
    ChainVersion,
    LlmStep,
    MapStep,
    ReduceStep,
    Step,
)
from pipeline.chains.values import as_list, as_text, label_of, reduce, resolve, transform
from schemas import CacheControl, Message
from schemas.chains import ChainRun, ChainStepStatus


def new_run(
    chain: ChainVersion,
    variables: dict[str, Any],
    *,
    cache: CacheControl,
    history: tuple[Message, ...] = (),
    summary: str | None = None,
) -> ChainRun:
    """A chain job's run before its first step: every step pending (`history` and `summary`:
    its session's, for its first llm step)."""
    return ChainRun(
        id=chain.id,
        version=chain.version,
        variables=variables,
        cache=cache,
        history=history,
        summary=summary,
        steps=tuple(ChainStepStatus(name=s.name, kind=s.kind) for s in chain.steps.values()),
    )


def first_llm_step(chain: ChainVersion) -> str | None:
    """The first llm step in the chain's order: the one its session's history goes to."""
    return next((s.name for s in chain.steps.values() if isinstance(s, LlmStep)), None)


def input_text(variables: Mapping[str, Any]) -> str:
    """A chain's input as the user turn its session keeps: one variable's value as text,
    several as `name: value` lines."""
    if len(variables) == 1:
        return as_text(next(iter(variables.values())))
    return "\n".join(f"{name}: {as_text(value)}" for name, value in variables.items())


def known(run: ChainRun) -> dict[str, Any]:
    """What a run's steps may read: its variables and the values of the steps done."""
    return {**run.variables, **run.values}


def next_step(chain: ChainVersion, values: Mapping[str, Any]) -> str | None:
    """The step to run next, or None once the chain's output is known."""
    target = chain.output
    # Each turn goes one read deeper; the graph has no cycles, so this ends.
    while target not in values:
        step = chain.steps[target]
        missing = [name for name in _reads(chain, step) if name not in values]
        if missing:
            target = missing[0]
        elif isinstance(step, BranchStep) and case_of(step, values) not in values:
            target = case_of(step, values)
        else:
            return target
    return None


def case_of(step: BranchStep, values: Mapping[str, Any]) -> str:
    """The step a branch picks for the value it reads (as the Runnable's RunnableBranch)."""
    label = label_of(resolve(values, step.on, step.name))
    return next((t for value, t in step.cases.items() if label == value), step.default)


async def run_step(chain: ChainVersion, name: str, values: Mapping[str, Any]) -> Any:
    """The value of the step `name` from `values` (a map runs by item: `run_item`)."""
    step = chain.steps[name]
    match step:
        case LlmStep():
            return await llm_runnable(step).ainvoke(dict(values))
        case BranchStep():
            return values[case_of(step, values)]
        case ReduceStep():
            return reduce(step, values)
        case MapStep():
            raise ValueError(f"step {name!r} is a map: it runs by item")
        case _:
            return transform(step, values)


def map_items(step: MapStep, values: Mapping[str, Any]) -> list[Any]:
    """The list a map runs its step over (ChainStepFailed if it is none)."""
    return as_list(resolve(values, step.over, step.name), step.name, step.over)


async def run_item(
    chain: ChainVersion, step: MapStep, values: Mapping[str, Any], index: int, item: Any
) -> Any:
    """The value of a map's step for the item at `index` (from 1)."""
    body = chain.steps[step.step]
    assert isinstance(body, LlmStep)
    return await llm_runnable(body).ainvoke({**values, ITEM: item, INDEX: index})


def _reads(chain: ChainVersion, step: Step) -> list[str]:
    """What `step` needs known before it runs, in the chain's order (inputs first)."""
    needed = dependencies(step)
    if isinstance(step, MapStep):
        needed |= dependencies(chain.steps[step.step])
    order = [*chain.inputs, *chain.steps]
    return sorted(needed, key=order.index)
