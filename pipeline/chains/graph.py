"""The shape of a chain's steps: every name resolves, nothing depends on itself, and the
item of a map is read only by the step the map runs."""

from graphlib import CycleError, TopologicalSorter

from pipeline.chains.spec import (
    INDEX,
    ITEM,
    ChainVersion,
    LlmStep,
    MapStep,
    Step,
    runs_of,
    sources_of,
)


def dependencies(step: Step) -> set[str]:
    """The steps and inputs `step` needs before it can run (item and index excluded)."""
    return {s.name for s in sources_of(step)} - {ITEM, INDEX}


def check_graph(chain: ChainVersion) -> None:
    """Raise ValueError naming the step and field of the first problem in `chain`'s graph."""
    known = set(chain.inputs) | set(chain.steps)
    mapped = {step.step for step in chain.steps.values() if isinstance(step, MapStep)}
    readers: dict[str, list[str]] = {}
    for step in chain.steps.values():
        for source in sources_of(step):
            if source.name in (ITEM, INDEX):
                if step.name not in mapped:
                    raise ValueError(
                        f"step {step.name!r}: reads {{{source.name}}} but no map runs it"
                    )
                continue
            if source.name not in known:
                raise ValueError(
                    f"step {step.name!r}: reads {str(source)!r}, which is no input or step"
                )
            readers.setdefault(source.name, []).append(step.name)
        for target in runs_of(step):
            if target not in chain.steps:
                raise ValueError(f"step {step.name!r}: runs {target!r}, which is no step")
        if isinstance(step, MapStep) and not isinstance(chain.steps[step.step], LlmStep):
            raise ValueError(f"step {step.name!r}: 'step' must name an llm step")
    for name in mapped:
        # A map's step exists once per item: nothing else may read it, or be it.
        if name in readers or name == chain.output:
            raise ValueError(f"step {name!r}: a map runs it, so no other step may read it")
    graph = {name: dependencies(step) | set(runs_of(step)) for name, step in chain.steps.items()}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise ValueError(f"the steps depend on themselves: {cycle}") from exc
