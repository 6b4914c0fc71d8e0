"""The multiprocess metric files: prepared before prometheus_client loads, dead pids forgotten."""

import os
import subprocess
from pathlib import Path

import pytest

from pipeline import metrics_files


def test_the_directory_cannot_be_prepared_once_prometheus_client_is_loaded() -> None:
    # Given a process that imported prometheus_client already (this one has)
    environ: dict[str, str] = {}

    # Then preparing the directory now is refused, and nothing is named in the environment
    with pytest.raises(RuntimeError, match="before prometheus_client is first imported"):
        metrics_files.prepare(environ)
    assert environ == {}


def test_live_gauges_of_processes_gone_are_forgotten_and_the_rest_kept(tmp_path: Path) -> None:
    # Given live-gauge files of a process that has exited and of this one, and a counter file
    ended = subprocess.Popen(["true"])
    ended.wait()
    dead = tmp_path / f"gauge_livesum_{ended.pid}.db"
    alive = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    counter = tmp_path / f"counter_{ended.pid}.db"
    for file in (dead, alive, counter):
        file.write_bytes(b"")

    # When the dead are forgotten
    metrics_files.forget_dead(tmp_path)

    # Then only the exited process's live gauges are gone: its counters still count
    assert not dead.exists()
    assert alive.exists()
    assert counter.exists()
