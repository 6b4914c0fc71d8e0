"""The chain catalogue: every chain version, loaded, checked and built once at start-up."""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from langchain_core.runnables import Runnable

from pipeline.catalog import ModelCatalog
from pipeline.chains.build import State, build
from pipeline.chains.loader import load_directory
from pipeline.chains.spec import ChainVersion
from pipeline.errors import UnknownChain
from pipeline.templates import TemplateCatalog


@dataclass(frozen=True, slots=True, eq=False)
class Chain:
    """A chain version and its Runnable."""

    spec: ChainVersion
    runnable: Runnable[State, State]


class ChainCatalog:
    """Chains by id and version; the newest version when a request names none."""

    def __init__(self, versions: Iterable[ChainVersion] = ()) -> None:
        self._by_id: dict[str, dict[int, Chain]] = {}
        for spec in versions:
            self._by_id.setdefault(spec.id, {})[spec.version] = Chain(spec, build(spec))

    @classmethod
    def from_directory(
        cls, directory: Path, models: ModelCatalog, templates: TemplateCatalog
    ) -> "ChainCatalog":
        """Load config/chains/; InvalidConfig naming the file, step and field if one is bad."""
        return cls(load_directory(directory, models, templates))

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
