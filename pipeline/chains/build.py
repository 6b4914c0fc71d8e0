"""A chain version as a LangChain Runnable: the steps as RunnableSequence, RunnableParallel,
RunnableBranch and RunnableLambda, over a state of named values.

The state is a dict: the chain's inputs, then each step's output under its name. Steps run
in layers, every step of a layer at once (`RunnablePassthrough.assign`, a RunnableParallel),
each layer after the ones it reads. A branch runs only the case it picks, and a map runs its
step once per item, each with what it needs computed within it: a step that nothing on the
way to the output reads never runs.
"""

from collections.abc import Callable, Collection
from graphlib import TopologicalSorter
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import (
    Runnable,
    RunnableBranch,
    RunnableConfig,
    RunnableLambda,
    RunnablePassthrough,
)

from pipeline.chains.chat_model import PromptbusChatModel
from pipeline.chains.graph import dependencies
from pipeline.chains.spec import (
    INDEX,
    ITEM,
    STEP_TAG,
    BranchStep,
    ChainVersion,
    LlmStep,
    MapStep,
    ReduceStep,
    Step,
)
from pipeline.chains.values import as_list, as_text, label_of, reduce, resolve, transform
from pipeline.errors import PromptbusError

State = dict[str, Any]


def build(chain: ChainVersion) -> Runnable[State, State]:
    """The Runnable of `chain`: from its inputs to a state holding its output step's value."""
    return _Builder(chain).ensure(chain.output, set(chain.inputs))


class _Builder:
    def __init__(self, chain: ChainVersion) -> None:
        self._chain = chain

    def ensure(self, target: str, available: Collection[str]) -> Runnable[State, State]:
        """A Runnable adding `target` (and what it needs, beyond `available`) to the state."""
        steps = self._chain.steps
        needed: dict[str, set[str]] = {}
        pending = [target]
        while pending:
            name = pending.pop()
            if name in needed or name in available:
                continue
            needed[name] = {d for d in dependencies(steps[name]) if d not in available}
            pending.extend(needed[name])
        sorter = TopologicalSorter(needed)
        sorter.prepare()
        layers: list[Runnable[State, State]] = []
        known = set(available)
        while sorter.is_active():
            layer = sorted(sorter.get_ready())
            layers.append(
                RunnablePassthrough.assign(
                    **{name: self._step(steps[name], frozenset(known)) for name in layer}
                )
            )
            known.update(layer)
            sorter.done(*layer)
        if not layers:
            return RunnablePassthrough()
        first, *rest = layers
        return first.pipe(*rest) if rest else first

    def _value_of(self, target: str, available: Collection[str]) -> Runnable[State, Any]:
        """A Runnable giving `target`'s value, computing it (and what it needs) within."""
        return self.ensure(target, available) | RunnableLambda(lambda state: state[target])

    def _step(self, step: Step, available: frozenset[str]) -> Runnable[State, Any]:
        match step:
            case LlmStep():
                return llm_runnable(step)
            case MapStep():
                return self._map(step, available)
            case BranchStep():
                return self._branch(step, available)
            case ReduceStep():
                return RunnableLambda(lambda state: reduce(step, state), name=step.name)
            case _:
                return RunnableLambda(lambda state: transform(step, state), name=step.name)

    def _map(self, step: MapStep, available: frozenset[str]) -> Runnable[State, list[Any]]:
        body = self._value_of(step.step, available | {ITEM, INDEX})

        async def run(state: State, config: RunnableConfig) -> list[Any]:
            items = as_list(resolve(state, step.over, step.name), step.name, step.over)
            inputs = [{**state, ITEM: item, INDEX: i} for i, item in enumerate(items, start=1)]
            batched = RunnableConfig(**config)
            batched["max_concurrency"] = step.max_concurrency
            return await body.abatch(inputs, batched)

        return RunnableLambda(run, name=step.name)

    def _branch(self, step: BranchStep, available: frozenset[str]) -> Runnable[State, Any]:
        def case(value: str) -> Callable[[State], bool]:
            return lambda state: label_of(resolve(state, step.on, step.name)) == value

        cases = [(case(value), self._value_of(t, available)) for value, t in step.cases.items()]
        return RunnableBranch(*cases, self._value_of(step.default, available)).with_config(
            run_name=step.name
        )


def llm_runnable(step: LlmStep) -> Runnable[State, Any]:
    """The model call of `step`: its prompt filled from the state, through promptbus's path."""
    # Tagged: a streamed invocation tells each model call's deltas by its step.
    bound = (
        PromptbusChatModel(model=step.model)
        .bind(step=step.name, params=step.params, response_schema=step.response_schema)
        .with_config(tags=[STEP_TAG + step.name])
    )
    call = step.prompt | bound

    async def run(state: State, config: RunnableConfig) -> Any:
        values = {name: as_text(resolve(state, s, step.name)) for name, s in step.inputs.items()}
        try:
            message: BaseMessage = await call.ainvoke(values, config)
        except PromptbusError as exc:
            exc.message = f"step {step.name!r}: {exc.message}"
            raise
        if step.response_schema is not None:
            return message.response_metadata.get("json")
        return message.text

    return RunnableLambda(run, name=step.name)
