"""The order in which each routing strategy tries a route's deployments."""

import random
from collections import Counter

from pipeline.catalog import Deployment, ModelSpec, Route, Strategy
from pipeline.resilience.load import DeploymentLoad
from pipeline.resilience.strategies import order


def _route(strategy: Strategy, *weights: float) -> Route:
    deployments = tuple(
        Deployment(ModelSpec("p", f"m{i}", (), 0.0, 0.0), weight)
        for i, weight in enumerate(weights)
    )
    return Route(name="r", deployments=deployments, strategy=strategy)


def _names(route: Route, load: DeploymentLoad, rng: random.Random) -> list[str]:
    return [d.name for d in order(route, load, rng)]


def test_fallback_keeps_the_configured_order() -> None:
    route = _route("fallback", 1, 1, 1)
    assert _names(route, DeploymentLoad(), random.Random(0)) == ["p/m0", "p/m1", "p/m2"]


def test_weighted_puts_each_first_in_proportion_to_its_weight() -> None:
    route = _route("weighted", 3, 1)
    rng = random.Random(42)
    firsts = Counter(_names(route, DeploymentLoad(), rng)[0] for _ in range(4000))
    assert 0.70 < firsts["p/m0"] / 4000 < 0.80  # 3 / (3 + 1)
    # and every order still holds every deployment, as fallbacks
    assert sorted(_names(route, DeploymentLoad(), rng)) == ["p/m0", "p/m1"]


def test_least_busy_prefers_the_fewest_calls_in_flight() -> None:
    route = _route("least-busy", 1, 1, 1)
    load = DeploymentLoad()
    for _ in range(2):
        load.start("p/m0")
    load.start("p/m1")
    assert _names(route, load, random.Random(0)) == ["p/m2", "p/m1", "p/m0"]


def test_lowest_latency_tries_unmeasured_ones_first_then_the_fastest() -> None:
    route = _route("lowest-latency", 1, 1, 1)
    load = DeploymentLoad()
    for name, latency in (("p/m0", 0.5), ("p/m1", 0.1)):
        load.start(name)
        load.end(name, latency)
    assert _names(route, load, random.Random(0)) == ["p/m2", "p/m1", "p/m0"]
