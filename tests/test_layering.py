"""The imports run the way DESIGN.md draws them, and no two packages import each other."""

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = ("pipeline", "handlers", "schemas")


def _unit(module: str) -> str:
    """A package of ours, or a top-level module of `pipeline`, as one unit of the graph."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "pipeline" and len(parts) > 1 else parts[0]


def _imports() -> dict[str, set[str]]:
    """Every module of ours and the modules it imports (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for package in OURS:
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(
                ".__init__"
            )
            names: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module)
            found[module] = names
    return found


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(unit: str) -> None:
        index[unit] = low[unit] = len(index)
        stack.append(unit)
        for other in edges.get(unit, ()):
            if other not in index:
                visit(other)
                low[unit] = min(low[unit], low[other])
            elif other in stack:
                low[unit] = min(low[unit], index[other])
        if low[unit] == index[unit]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == unit:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for unit in sorted(edges):
        if unit not in index:
            visit(unit)
    return groups


def test_no_two_packages_import_each_other() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, names in _imports().items():
        for name in names:
            if name.split(".")[0] in OURS and _unit(name) != _unit(module):
                edges[_unit(module)].add(_unit(name))
    assert _cycles(edges) == []


def test_schemas_import_nothing_of_ours_and_stages_no_web_layer_or_celery() -> None:
    for module, names in _imports().items():
        if module.startswith("schemas"):
            assert not {n for n in names if n.split(".")[0] in ("pipeline", "handlers")}, module
        if module.startswith("handlers"):
            banned = ("aiohttp", "celery", "kombu", "pipeline.ingress", "pipeline.bus")
            assert not {n for n in names if n.startswith(banned)}, (module, names)
            assert not {n for n in names if n.startswith("pipeline.worker")}, module


def test_the_job_store_holds_only_the_job_store() -> None:
    for module, names in _imports().items():
        if module.startswith("pipeline.jobs"):
            others = ("handlers", "pipeline.bus", "pipeline.worker", "pipeline.ingress")
            assert not {n for n in names if n.startswith(others)}, (module, names)
