"""The model catalogue: which names a request may use, who serves them, what they cost.

config/models.toml lists provider models (`[models.*]`: provider, model, aliases, list
prices, optional batch prices and rate limits) and routes (`[routes.*]`: a name standing
for an ordered list of deployments, each a listed model with a weight, and how to choose
among them). Any model or alias is also a route of one deployment.
"""

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args

from pipeline.errors import UnknownModel
from schemas import Cost, Usage

_PER_MILLION = 1_000_000

Strategy = Literal["fallback", "weighted", "least-busy", "lowest-latency"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One provider model, its aliases, prices per million tokens and rate limits.

    The batch prices are what the provider's own batch API charges (Gemini's: half the
    list price); a model without them costs its list price in a batch too.
    """

    provider: str
    provider_model: str
    aliases: tuple[str, ...]
    input_per_million: float
    output_per_million: float
    rpm: int | None = None
    tpm: int | None = None
    batch_input_per_million: float | None = None
    batch_output_per_million: float | None = None

    @property
    def deployment(self) -> str:
        """The model's name as a deployment: `provider/model`."""
        return f"{self.provider}/{self.provider_model}"

    def cost(self, usage: Usage) -> Cost:
        """What `usage` costs at this model's list price."""
        return _priced(usage, self.input_per_million, self.output_per_million)

    def batch_cost(self, usage: Usage) -> Cost:
        """What `usage` costs through the provider's batch API (its batch price, else list)."""
        return _priced(
            usage,
            _either(self.batch_input_per_million, self.input_per_million),
            _either(self.batch_output_per_million, self.output_per_million),
        )


def _either(price: float | None, default: float) -> float:
    return default if price is None else price


def _priced(usage: Usage, input_per_million: float, output_per_million: float) -> Cost:
    input_usd = usage.input_tokens * input_per_million / _PER_MILLION
    output_usd = usage.output_tokens * output_per_million / _PER_MILLION
    return Cost(
        input_usd=round(input_usd, 10),
        output_usd=round(output_usd, 10),
        total_usd=round(input_usd + output_usd, 10),
    )


@dataclass(frozen=True, slots=True)
class Deployment:
    """A model a route may send a request to, with its share of traffic."""

    spec: ModelSpec
    weight: float = 1.0

    @property
    def name(self) -> str:
        """`provider/model`."""
        return self.spec.deployment


@dataclass(frozen=True, slots=True)
class Route:
    """What a request's model name stands for: deployments and how to choose among them."""

    name: str
    deployments: tuple[Deployment, ...]
    strategy: Strategy = "fallback"
    fallback_on_blocked: bool = False

    @property
    def single(self) -> bool:
        """Whether the route is one model (its cache entries are that model's)."""
        return len(self.deployments) == 1


class ModelCatalog:
    """Resolves a request's model name (route, alias or provider model) to what serves it."""

    def __init__(
        self, specs: Iterable[ModelSpec], routes: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        self._by_name: dict[str, ModelSpec] = {}
        for spec in specs:
            for name in (spec.provider_model, *spec.aliases):
                if name in self._by_name:
                    raise ValueError(f"model name {name!r} is listed twice")
                self._by_name[name] = spec
        self._by_deployment = {spec.deployment: spec for spec in self._by_name.values()}
        self._routes = {name: self._route(name, entry) for name, entry in (routes or {}).items()}
        self._singles = {
            name: Route(name=spec.provider_model, deployments=(Deployment(spec),))
            for name, spec in self._by_name.items()
        }

    @classmethod
    def from_file(cls, path: Path) -> "ModelCatalog":
        """Load config/models.toml; a malformed file raises ValueError naming it."""
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        try:
            specs = [
                ModelSpec(
                    provider=str(entry["provider"]),
                    provider_model=str(entry["provider_model"]),
                    aliases=tuple(entry.get("aliases", ())),
                    input_per_million=_price(entry["input_per_million"]),
                    output_per_million=_price(entry["output_per_million"]),
                    rpm=_limit(entry.get("rpm")),
                    tpm=_limit(entry.get("tpm")),
                    **_batch_prices(entry),
                )
                for entry in data.get("models", {}).values()
            ]
            return cls(specs, data.get("routes", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc

    def _route(self, name: str, entry: Mapping[str, Any]) -> Route:
        if name in self._by_name:
            raise ValueError(f"route {name!r} has the name of a model")
        strategy = entry.get("strategy", "fallback")
        if strategy not in STRATEGIES:
            raise ValueError(f"route {name!r}: strategy must be one of {', '.join(STRATEGIES)}")
        deployments = []
        for item in entry.get("deployments", ()):
            spec = self._by_name.get(str(item["model"]))
            if spec is None:
                raise ValueError(f"route {name!r}: model {item['model']!r} is not listed")
            weight = float(item.get("weight", 1.0))
            if weight <= 0:
                raise ValueError(f"route {name!r}: weights must be positive")
            deployments.append(Deployment(spec, weight))
        if not deployments or len({d.name for d in deployments}) != len(deployments):
            raise ValueError(f"route {name!r} needs deployments, each listed once")
        return Route(
            name=name,
            deployments=tuple(deployments),
            strategy=cast(Strategy, strategy),
            fallback_on_blocked=bool(entry.get("fallback_on_blocked", False)),
        )

    def route(self, name: str) -> Route:
        """The route a request's model name stands for, or UnknownModel listing what is known."""
        route = self._routes.get(name) or self._singles.get(name)
        if route is None:
            known = ", ".join(self.aliases()) or "none"
            raise UnknownModel(f"unknown model {name!r}; known aliases: {known}", field="model")
        return route

    def resolve(self, name: str) -> ModelSpec:
        """The spec of a model name (not a route), or UnknownModel."""
        spec = self._by_name.get(name)
        if spec is None:
            return self.route(name).deployments[0].spec
        return spec

    def deployment(self, provider: str, provider_model: str) -> ModelSpec | None:
        """The spec of the deployment `provider/provider_model`, if listed."""
        return self._by_deployment.get(f"{provider}/{provider_model}")

    def specs(self) -> list[ModelSpec]:
        """Every distinct model, in a stable order."""
        return sorted(set(self._by_name.values()), key=lambda s: s.deployment)

    def routes(self) -> list[Route]:
        """Every configured route (not the single-model ones), by name."""
        return [self._routes[name] for name in sorted(self._routes)]

    def aliases(self) -> list[str]:
        """Every alias and route name, sorted."""
        names = {a for spec in self._by_name.values() for a in spec.aliases}
        return sorted(names | set(self._routes))


def _price(value: object) -> float:
    price = float(value)  # type: ignore[arg-type]  # TOML gives a number or fails here
    if not price >= 0:
        raise ValueError(
            f"prices must be zero or more US dollars per million tokens, not {value!r}"
        )
    return price


def _batch_prices(entry: Mapping[str, Any]) -> dict[str, float]:
    """A model entry's batch prices: both of them, or neither."""
    names = ("batch_input_per_million", "batch_output_per_million")
    given = [name for name in names if name in entry]
    if len(given) == 1:
        raise ValueError(f"give both {' and '.join(names)}, or neither; given only {given[0]}")
    return {name: _price(entry[name]) for name in given}


def _limit(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"rate limits must be positive integers, not {value!r}")
    return value
