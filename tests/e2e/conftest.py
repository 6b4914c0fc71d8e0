"""Fixtures the end-to-end tests share."""

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.support.provider_batches import batch_emulator, batch_jobs  # noqa: F401 - fixtures
from tests.support.resilience import TEST_MODELS
from tests.support.services import REDIS_URL


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The shipped config directory plus the test models and routes."""
    target = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", target)
    with (target / "models.toml").open("a") as fh:
        fh.write(TEST_MODELS)
    return target


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own in the test database, deleted afterwards."""
    prefix = f"pbtest-{os.urandom(5).hex()}:"
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    yield prefix
    async for key in client.scan_iter(match=f"{prefix}*"):
        await client.delete(key)
    await client.aclose()
