"""The order in which a route tries its deployments, by strategy."""

import random
from typing import Protocol

from pipeline.catalog import Deployment, Route


class LoadView(Protocol):
    """What the load-aware strategies read: calls in flight and recent latency."""

    def in_flight(self, key: str) -> int:
        """Calls to `key` running now."""
        ...

    def latency(self, key: str) -> float | None:
        """Recent latency of `key` in seconds; None when unknown."""
        ...


def order(route: Route, load: LoadView, rng: random.Random) -> list[Deployment]:
    """The route's deployments, first choice first; later ones are its fallbacks."""
    listed = list(route.deployments)
    if route.strategy == "weighted":
        # A weighted random order (Efraimidis-Spirakis): key u^(1/w), largest first.
        return sorted(listed, key=lambda d: rng.random() ** (1.0 / d.weight), reverse=True)
    if route.strategy == "least-busy":
        return sorted(listed, key=lambda d: load.in_flight(d.name))
    if route.strategy == "lowest-latency":
        # Deployments never measured go first, so that each gets measured.
        def latency(d: Deployment) -> float:
            measured = load.latency(d.name)
            return -1.0 if measured is None else measured

        return sorted(listed, key=latency)
    return listed
