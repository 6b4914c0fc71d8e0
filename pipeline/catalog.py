"""The model catalogue: which names a request may use, who serves them, what they cost."""

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UnknownModel
from schemas import Cost, Usage

_PER_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One provider model, its aliases and its list prices per million tokens."""

    provider: str
    provider_model: str
    aliases: tuple[str, ...]
    input_per_million: float
    output_per_million: float

    def cost(self, usage: Usage) -> Cost:
        """What `usage` costs at this model's list price."""
        input_usd = usage.input_tokens * self.input_per_million / _PER_MILLION
        output_usd = usage.output_tokens * self.output_per_million / _PER_MILLION
        return Cost(
            input_usd=round(input_usd, 10),
            output_usd=round(output_usd, 10),
            total_usd=round(input_usd + output_usd, 10),
        )


class ModelCatalog:
    """Resolves a request's model name, alias or provider model, to its spec."""

    def __init__(self, specs: Iterable[ModelSpec]) -> None:
        self._by_name: dict[str, ModelSpec] = {}
        for spec in specs:
            for name in (spec.provider_model, *spec.aliases):
                if name in self._by_name:
                    raise ValueError(f"model name {name!r} is listed twice")
                self._by_name[name] = spec
        self._aliases = sorted(a for spec in self._by_name.values() for a in spec.aliases)

    @classmethod
    def from_file(cls, path: Path) -> "ModelCatalog":
        """Load config/models.toml."""
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        return cls(
            ModelSpec(
                provider=str(entry["provider"]),
                provider_model=str(entry["provider_model"]),
                aliases=tuple(entry.get("aliases", ())),
                input_per_million=float(entry["input_per_million"]),
                output_per_million=float(entry["output_per_million"]),
            )
            for entry in data.get("models", {}).values()
        )

    def resolve(self, name: str) -> ModelSpec:
        """The spec a name stands for, or UnknownModel listing what is known."""
        spec = self._by_name.get(name)
        if spec is None:
            known = ", ".join(sorted(set(self._aliases))) or "none"
            raise UnknownModel(f"unknown model {name!r}; known aliases: {known}", field="model")
        return spec

    def specs(self) -> list[ModelSpec]:
        """Every distinct model, in a stable order."""
        return sorted(set(self._by_name.values()), key=lambda s: s.provider_model)

    def aliases(self) -> list[str]:
        """Every alias, sorted."""
        return sorted(set(self._aliases))
