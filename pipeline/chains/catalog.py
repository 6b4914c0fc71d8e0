"""The chain catalogue: every chain version, loaded, checked and built once at start-up."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from langchain_core.runnables import Runnable

from pipeline.catalog import ModelCatalog
from pipeline.chains.build import State, build
from pipeline.chains.custom import load_custom
from pipeline.chains.loader import load_directory
from pipeline.chains.spec import ChainVersion
from pipeline.errors import InvalidConfig, UnknownChain
from pipeline.templates import TemplateCatalog


@dataclass(frozen=True, slots=True, eq=False)
class Chain:
    """A chain version and its Runnable."""

    spec: ChainVersion
    runnable: Runnable[State, State]


class ChainCatalog:
    """Chains by id and version; the newest version when a request names none."""

    def __init__(
        self,
        versions: Iterable[ChainVersion] = (),
        custom: Mapping[str, tuple[ChainVersion, Runnable[State, State]]] | None = None,
    ) -> None:
        self._by_id: dict[str, dict[int, Chain]] = {}
        for spec in versions:
            self._by_id.setdefault(spec.id, {})[spec.version] = Chain(spec, build(spec))
        for chain_id, (spec, runnable) in (custom or {}).items():
            if chain_id in self._by_id:
                raise InvalidConfig(f"custom chain {chain_id!r}: config/chains/ has that id")
            self._by_id[chain_id] = {spec.version: Chain(spec, runnable)}

    @classmethod
    def from_directory(
        cls,
        directory: Path,
        models: ModelCatalog,
        templates: TemplateCatalog,
        custom: Mapping[str, str] | None = None,
    ) -> "ChainCatalog":
        """Load config/chains/ and the `custom` chains ("package.module:factory" by id);
        InvalidConfig naming the file, step and field, or the factory, if one is bad."""
        loaded = {}
        for chain_id, spec in (custom or {}).items():
            try:
                loaded[chain_id] = load_custom(chain_id, spec)
            except ValueError as exc:
                raise InvalidConfig(str(exc)) from exc
        return cls(load_directory(directory, models, templates), loaded)

    def get(self, chain_id: str, version: int | None = None) -> Chain:
        """One version of a chain (the newest when `version` is None), or UnknownChain."""
        by_number = self._by_id.get(chain_id)
        if by_number is None:
            known = ", ".join(sorted(self._by_id)) or "none"
            raise UnknownChain(f"unknown chain {chain_id!r}; known chains: {known}", field="id")
        if version is None:
            return by_number[max(by_number)]
        found = by_number.get(version)
        if found is None:
            known = ", ".join(str(n) for n in sorted(by_number))
            raise UnknownChain(
                f"chain {chain_id!r} has no version {version}; versions: {known}", field="version"
            )
        return found

    def versions(self, chain_id: str | None = None) -> list[ChainVersion]:
        """Every version (or one chain's, UnknownChain if unknown), by id then version."""
        if chain_id is not None:
            self.get(chain_id)
        ids = [chain_id] if chain_id is not None else sorted(self._by_id)
        return [self._by_id[i][n].spec for i in ids for n in sorted(self._by_id[i])]
