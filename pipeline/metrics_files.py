"""Where a multi-process run keeps its metric files (prometheus_client's multiprocess mode).

prometheus_client picks per-process files over in-memory values when it is first imported,
if `PROMETHEUS_MULTIPROC_DIR` names a directory then. So the entry point of a run whose
processes export together (`serve --processes N`, `worker --pool prefork`) makes the
directory and names it in its environment before anything imports prometheus_client; its
children inherit it. Files of an earlier run must not be counted again: a directory given
by the operator is emptied of them, and one made here is new and removed at the end.
This module imports prometheus_client only inside its functions, for that reason.
"""

import os
import shutil
import sys
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class MetricsDir:
    """This run's metric files: where, and whether the directory is this run's own."""

    path: Path
    owned: bool

    def remove(self) -> None:
        """Remove the run's files (and the directory, if this run made it)."""
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            _wipe(self.path)


def prepare(environ: MutableMapping[str, str]) -> MetricsDir:
    """An empty directory for this run's metric files, named in `environ` (os.environ)."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError(f"{ENV} must be set before prometheus_client is first imported")
    given = environ.get(ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        _wipe(path)
        found = MetricsDir(path, owned=False)
    else:
        found = MetricsDir(Path(tempfile.mkdtemp(prefix="promptbus-metrics-")), owned=True)
    environ[ENV] = str(found.path)
    return found


def mark_dead(pid: int, path: Path) -> None:
    """Forget the live gauges of a process that exited (its counters keep counting)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def forget_dead(path: Path) -> None:
    """Forget the live gauges of every process that wrote `path` and is gone (even SIGKILLed)."""
    for file in path.glob("gauge_live*_*.db"):
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            mark_dead(int(pid), path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wipe(path: Path) -> None:
    for file in path.glob("*.db"):
        file.unlink(missing_ok=True)
