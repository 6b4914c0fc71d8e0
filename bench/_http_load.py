"""The fast-path bench's aiohttp load: closed-loop workers that time every request."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping

import aiohttp
from _common import JSON_HEADERS, Errors, Load, client_session

BodyFor = Callable[[int], bytes]
ExpectedHeader = tuple[str, str] | None
Request = Callable[[int], Awaitable[float | str]]


async def timed_workers(
    request: Request, workers: int, duration_s: float, stagger_s: float = 0.0
) -> Load:
    """Run `workers` closed loops of `request` for `duration_s`; it times itself or says why not.

    With `stagger_s`, worker k starts k/workers of it late. Closed-loop workers that
    start together stay in lockstep when every answer takes the same time, so each
    round arrives as one burst; staggering over one service time models a steady
    stream instead. Each worker still runs for exactly `duration_s`.
    """
    latencies: list[float] = []
    errors = Errors()
    numbers = itertools.count()

    async def worker(index: int) -> None:
        await asyncio.sleep(stagger_s * index / workers)
        deadline = time.perf_counter() + duration_s
        while time.perf_counter() < deadline:
            outcome = await request(next(numbers))
            if isinstance(outcome, str):
                errors.add(outcome)
            else:
                latencies.append(outcome)

    started = time.perf_counter()
    await asyncio.gather(*(worker(index) for index in range(workers)))
    elapsed = time.perf_counter() - started if not stagger_s else duration_s
    return Load.of(latencies, elapsed, errors)


async def aiohttp_load(
    url: str,
    body_for: BodyFor,
    workers: int,
    duration_s: float,
    expect: ExpectedHeader = None,
    stagger_s: float = 0.0,
    headers: Mapping[str, str] | None = None,
) -> Load:
    """POST from `workers` keep-alive connections for `duration_s`, timing every request."""
    sent = {**JSON_HEADERS, **(headers or {})}
    async with client_session(workers, 30) as session:

        async def post(number: int) -> float | str:
            body = body_for(number)
            began = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=sent) as response:
                    payload = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                return f"{type(exc).__name__}: {exc}"
            if response.status != 200:
                return f"HTTP {response.status}: {payload[:300].decode(errors='replace')}"
            if expect and (got := response.headers.get(expect[0])) != expect[1]:
                return f"{expect[0]} was {got}, not {expect[1]}"
            return time.perf_counter() - began

        return await timed_workers(post, workers, duration_s, stagger_s)
