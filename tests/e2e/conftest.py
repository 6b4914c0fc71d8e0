"""Fixtures the end-to-end tests share."""

import shutil
from pathlib import Path

import pytest

from tests.support.resilience import TEST_MODELS


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The shipped config directory plus the test models and routes."""
    target = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", target)
    with (target / "models.toml").open("a") as fh:
        fh.write(TEST_MODELS)
    return target
