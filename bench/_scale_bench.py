"""What the scale bench's phases share: the run's names, its processes and their clean-up."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
import redis
from _broker import BROKER_URLS, clean_broker
from _common import (
    PROMPTBUS,
    Child,
    Children,
    child_env,
    post_job_prompt,
    start_promptbus,
    wait_healthy,
)

BROKER: Final = "rabbitmq"
BROKER_URL: Final = BROKER_URLS[BROKER]
REDIS_URL: Final = "redis://127.0.0.1:6379/14"
# A fixed test secret: webhooks are not exercised, but the settings want one.
WEBHOOK_SECRET: Final = "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
WORKER_READY: Final = "promptbus worker consuming"


# --- clean-up ------------------------------------------------------------------------------


def clean_redis(prefix: str) -> int:
    """Delete every key of database 14 under `prefix` (SCAN, never FLUSH); how many."""
    deleted = 0
    with redis.Redis.from_url(REDIS_URL, socket_timeout=5) as client:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.delete(*batch)
                batch.clear()
        if batch:
            deleted += client.delete(*batch)
    return deleted


def clean_prefixes(prefixes: Sequence[str]) -> None:
    """Delete what every run prefix left in Redis, reporting failures."""
    for prefix in prefixes:
        try:
            clean_redis(prefix)
        except Exception as exc:
            print(f"cleaning redis {prefix} failed: {exc!r}", file=sys.stderr)


# --- the bench -----------------------------------------------------------------------------


@dataclass
class Bench:
    """What every phase shares: the children, an HTTP session, the emulator and the run's names."""

    children: Children
    session: aiohttp.ClientSession
    work_dir: Path
    emulator_url: str
    run_id: str
    jobs: int
    bodies: int
    suffixes: list[str]
    prefixes: list[str]
    errors: list[int] = field(default_factory=list)

    def new_names(self) -> tuple[str, str]:
        """A fresh bus suffix and Redis prefix, remembered for the clean-up."""
        tag = os.urandom(5).hex()
        suffix, prefix = f".bench-{tag}", f"pbbench-{tag}:"
        self.suffixes.append(suffix)
        self.prefixes.append(prefix)
        return suffix, prefix

    def settings(self, suffix: str, prefix: str) -> dict[str, str]:
        """The environment every promptbus process of one run shares."""
        data_dir = self.work_dir / "data"
        data_dir.mkdir(exist_ok=True)
        return {
            "PROMPTBUS_BROKER_URL": BROKER_URL,
            "PROMPTBUS_BUS_SUFFIX": suffix,
            "PROMPTBUS_REDIS_URL": REDIS_URL,
            "PROMPTBUS_REDIS_PREFIX": prefix,
            "PROMPTBUS_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PROMPTBUS_DATA_DIR": str(data_dir),
        }

    async def start_ingress(self, name: str, suffix: str, prefix: str) -> tuple[Child, str]:
        """`promptbus serve --no-worker`, once healthy; the child and its base URL."""
        child, base_url = start_promptbus(
            self.children, self.emulator_url, "--no-worker", **self.settings(suffix, prefix)
        )
        await wait_healthy(self.session, child, f"{base_url}/healthz")
        print(f"  ingress {name}: pid {child.process.pid}, {base_url}")
        return child, base_url

    def start_worker(self, suffix: str, prefix: str) -> Child:
        """`promptbus worker`; it is ready once it logs WORKER_READY."""
        env = child_env(
            PROMPTBUS_GEMINI_BASE_URL=self.emulator_url,
            PROMPTBUS_OPENAI_BASE_URL=f"{self.emulator_url}/v1",
            **self.settings(suffix, prefix),
        )
        # The ready line is logged at info level.
        env["PROMPTBUS_LOG_LEVEL"] = "info"
        return self.children.start("worker", [*PROMPTBUS, "worker"], env)

    async def post_job(self, base_url: str, label: str, number: int) -> str:
        """POST /v1/jobs with a prompt of its own (no cache hit); the job id of the 202."""
        prompt = f"scale bench {self.run_id} {label} {number}"
        return await post_job_prompt(self.session, base_url, prompt)

    async def release(self, started: Sequence[Child], suffix: str, prefix: str) -> None:
        """Stop `started` (last first), then delete what they left under `suffix` and `prefix`."""
        self.children.stop(*reversed(started))
        await asyncio.to_thread(clean_broker, BROKER, suffix)
        await asyncio.to_thread(clean_redis, prefix)
