"""What the fast-path bench's phases share: its children, load tools and printed rows."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from _common import JSON_HEADERS, BenchError, Check, Child, Children, Errors, Load, pass_fail
from _http_load import BodyFor, ExpectedHeader, aiohttp_load
from _wrk import parse_wrk, write_wrk_script


@dataclass
class Bench:
    """What every phase shares: the children, a probe session and every load run so far."""

    children: Children
    session: aiohttp.ClientSession
    work_dir: Path
    wrk: str | None
    duration_s: int
    connections: int
    script: Path
    stagger_s: float
    # wrk's own is 2 s: a slower answer counts as a timeout, and is not waited for.
    wrk_timeout_s: int | None = None
    loads: list[Load] = field(default_factory=list)

    async def fixed_load(
        self,
        url: str,
        body: bytes,
        duration_s: int,
        expect: ExpectedHeader,
        headers: Mapping[str, str] | None = None,
    ) -> Load:
        """Load `url` with one repeated body (and `headers`) using wrk, or aiohttp without it."""
        if self.wrk is None:
            load = await aiohttp_load(
                url, lambda _: body, self.connections, duration_s, expect, headers=headers
            )
        else:
            load = await self._wrk_load(self.wrk, url, body, duration_s, expect, headers)
        self.loads.append(load)
        return load

    async def client_floor(self, emulator_url: str, run_id: str) -> Load:
        """The LangChain client's own miss latency, measured in a process of its own.

        The script's `--client-floor` decides what is timed: a whole call, or a stream's TTFC.
        """
        argv = [sys.executable, str(self.script), "--client-floor", emulator_url]
        argv += ["--run-id", run_id, "--duration", str(self.duration_s)]
        child = self.children.start("client-floor", argv)
        if await self.finish(child, self.duration_s + 60, "the client floor run") != 0:
            raise BenchError(f"the client floor run failed:\n{child.output()}")
        numbers = json.loads(child.output().strip().splitlines()[-1])
        errors = Errors()
        for message in numbers["errors"]:
            errors.add(message)
        return Load(
            numbers["requests"], numbers["rps"], numbers["p50_ms"], numbers["p99_ms"], errors
        )

    async def unique_load(self, url: str, body_for: BodyFor, workers: int, duration_s: int) -> Load:
        """Load `url` with a fresh body per request, workers spread over one upstream latency."""
        load = await aiohttp_load(url, body_for, workers, duration_s, stagger_s=self.stagger_s)
        self.loads.append(load)
        return load

    async def _wrk_load(
        self,
        wrk: str,
        url: str,
        body: bytes,
        duration_s: int,
        expect: ExpectedHeader,
        headers: Mapping[str, str] | None,
    ) -> Load:
        script = self.work_dir / "post.lua"
        write_wrk_script(script, body, expect, headers)
        # One thread: wrk keeps one core and the server under test gets the other.
        argv = [wrk, "-t1", f"-c{self.connections}", f"-d{duration_s}s", "--latency"]
        if self.wrk_timeout_s is not None:
            argv.append(f"--timeout={self.wrk_timeout_s}s")
        child = self.children.start("wrk", [*argv, "-s", str(script), url])
        if code := await self.finish(child, duration_s + 30 + (self.wrk_timeout_s or 0), "wrk"):
            raise BenchError(f"wrk exited with {code}:\n{child.output()}")
        return parse_wrk(child.output())

    async def finish(self, child: Child, timeout_s: float, what: str) -> int:
        """The child's exit code; stop it and fail if it runs longer than `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (code := child.process.poll()) is None:
            if time.monotonic() > deadline:
                self.children.stop(child)
                raise BenchError(f"{what} did not finish:\n{child.tail()}")
            await asyncio.sleep(0.05)
        return code

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> tuple[int, str, str]:
        """One POST (with `headers` besides JSON's): status, X-Cache header and body text."""
        sent = {**JSON_HEADERS, **(headers or {})}
        async with self.session.post(url, data=body, headers=sent) as response:
            return response.status, response.headers.get("X-Cache", ""), await response.text()


def show(label: str, load: Load) -> None:
    """Print one load run's numbers and its first errors."""
    print(
        f"  {label:<26}{load.rate:>10.1f} req/s   p50 {load.p50_ms:8.2f} ms   "
        f"p99 {load.p99_ms:8.2f} ms   requests {load.completed:>7}   errors {load.errors.count}"
    )
    load.errors.show()


def verdict(check: Check) -> Check:
    """Print `check` as a target line (or a reference line, with no target) and hand it back."""
    if check.passed is None:
        print(f"  reference {check.name}: {check.measured}, no target")
    else:
        result = pass_fail(check.passed)
        print(f"  target {check.name}: {check.measured}, goal {check.goal}: {result}")
    return check
