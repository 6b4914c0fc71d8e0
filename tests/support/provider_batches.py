"""Provider batches in tests: an emulator with quick batch jobs, the SDK on a gateway, and
a file batch submitted in provider mode."""

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from pipeline.emulator import EmulatorConfig, RunningEmulator
from tests.e2e.test_batches_openai import jsonl
from tests.support.emulator import running
from tests.support.gateway import Gateway

PROVIDER = {"mode": "provider"}
# Poll the emulator's jobs quickly (they take 2 x its batch step).
FAST_POLL = {"gemini_batch_poll_initial_s": 0.05, "gemini_batch_poll_max_s": 0.2}


@pytest.fixture
async def batch_emulator() -> AsyncIterator[RunningEmulator]:
    """An emulator whose batch jobs take 2 x 50 ms."""
    async with running(EmulatorConfig(batch_step_ms=50)) as emu:
        yield emu


@pytest.fixture
async def batch_jobs(batch_emulator: RunningEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    """A session on the emulator (its batch jobs, its counters)."""
    async with aiohttp.ClientSession(base_url=batch_emulator.base_url) as session:
        yield session


def sdk(gateway: Gateway) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="any", max_retries=0)


async def gemini_jobs(jobs: aiohttp.ClientSession) -> list[dict[str, Any]]:
    """The emulator's batch jobs (Operations)."""
    async with jobs.get("/v1beta/batches") as resp:
        assert resp.status == 200
        operations: list[dict[str, Any]] = (await resp.json())["operations"]
        return operations


async def submit_file(client: openai.AsyncOpenAI, lines: list[bytes], **extra: Any) -> Any:
    """Upload `lines` and create a provider batch of chat completions over them."""
    upload = await client.files.create(file=("in.jsonl", jsonl(*lines)), purpose="batch")
    return await client.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_body=PROVIDER,
        **extra,
    )
