"""The streams bench's cache hits: a gateway against the raw baseline answering the same bytes."""

from __future__ import annotations

import asyncio
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from _common import (
    HOST,
    JSON_HEADERS,
    BenchError,
    Check,
    Load,
    emulator_calls,
    free_port,
    wait_healthy,
)
from _fast_bench import Bench, show
from _http_load import ExpectedHeader
from _machine import CpuWindow
from _sse import StreamFormat, stream_problem
from _stream_bench import WARMUP_S

STORED_WAIT_S: Final = 5.0
# The header that marks a cache hit, and its value (None: whatever the first hit carries).
HitHeader = tuple[str, str | None]


@dataclass(frozen=True)
class Turn:
    """One measured hit load and the CPU its server spent per request."""

    load: Load
    cpu_ms: float


@dataclass(frozen=True)
class Hits:
    """One gateway's hit scenario: the request, how a hit shows, the processes to watch."""

    label: str
    url: str
    body: bytes
    hit: HitHeader
    fmt: StreamFormat | None  # a streamed answer's events, checked once; None: plain JSON
    pids: Mapping[str, int]
    under_test: str
    headers: Mapping[str, str] | None = None


async def _post(
    bench: Bench, url: str, body: bytes, headers: Mapping[str, str] | None
) -> tuple[int, Mapping[str, str], bytes]:
    sent = {**JSON_HEADERS, **(headers or {})}
    async with bench.session.post(url, data=body, headers=sent) as response:
        return response.status, response.headers, await response.read()


async def stored_answer(bench: Bench, hits: Hits, emulator_url: str) -> tuple[bytes, str, str]:
    """Ask once (a miss that stores it), then until an answer makes no upstream call.

    The hit's bytes and content type (what the raw baseline will answer) and its hit header.
    """
    status, _, first = await _post(bench, hits.url, hits.body, hits.headers)
    if status != 200:
        raise BenchError(f"the first POST to {hits.url} answered {status}: {first[:300]!r}")
    name, value = hits.hit
    for _ in range(int(STORED_WAIT_S / 0.1)):
        before = await emulator_calls(bench.session, emulator_url)
        status, got, answer = await _post(bench, hits.url, hits.body, hits.headers)
        if status != 200:
            raise BenchError(f"POST {hits.url} answered {status}: {answer[:300]!r}")
        upstream = await emulator_calls(bench.session, emulator_url) - before
        marked = got.get(name)
        if not upstream and marked is not None and value in (None, marked):
            return answer, got.get("Content-Type", "application/json"), marked
        await asyncio.sleep(0.1)
    raise BenchError(f"{hits.url} did not answer from its cache within {STORED_WAIT_S:g}s")


async def _turn(
    bench: Bench,
    label: str,
    url: str,
    hits: Hits,
    expect: ExpectedHeader,
    pids: Mapping[str, int],
    under_test: str,
) -> Turn:
    """A warm-up, then one measured load, with the CPU it took."""
    await bench.fixed_load(url, hits.body, WARMUP_S, expect, hits.headers)
    window = CpuWindow(pids)
    load = await bench.fixed_load(url, hits.body, bench.duration_s, expect, hits.headers)
    show(label, load)
    line, cpu_ms = window.describe(load.completed, under_test)
    print(line)
    return Turn(load, cpu_ms)


async def hits_against_raw(
    bench: Bench, hits: Hits, emulator_url: str, rounds: int
) -> tuple[list[Turn], list[Turn]]:
    """Hit loads of the raw baseline and of the gateway, in turn for `rounds` rounds.

    The raw baseline answers the very bytes of the gateway's stored hit. Every answer of
    the gateway must carry the hit header, and the emulator must see no call meanwhile.
    """
    answer, content_type, marked = await stored_answer(bench, hits, emulator_url)
    if hits.fmt is not None and (problem := stream_problem(answer, hits.fmt)) is not None:
        raise BenchError(f"{hits.label} replayed a broken stream: {problem}")
    port = free_port()
    answer_file = bench.work_dir / f"raw-answer-{port}"
    answer_file.write_bytes(answer)
    argv = [sys.executable, str(bench.script), "--raw-server", "--port", str(port)]
    argv += ["--answer", str(answer_file), "--content-type", content_type.split(";")[0]]
    raw = bench.children.start("raw", argv)
    raw_url = f"http://{HOST}:{port}{urlsplit(hits.url).path}"
    raw_label, expect = f"raw aiohttp ({len(answer)} B)", (hits.hit[0], marked)
    raws: list[Turn] = []
    gateways: list[Turn] = []

    async def raw_turn() -> None:
        pids = {"raw": raw.process.pid}
        raws.append(await _turn(bench, raw_label, raw_url, hits, None, pids, "raw"))

    async def gateway_turn() -> None:
        turn = await _turn(bench, hits.label, hits.url, hits, expect, hits.pids, hits.under_test)
        gateways.append(turn)

    try:
        await wait_healthy(bench.session, raw, f"http://{HOST}:{port}/healthz")
        before = await emulator_calls(bench.session, emulator_url)
        for index in range(rounds):
            # In turn, one or the other first: a drift in other work then favours neither.
            for turn in (raw_turn, gateway_turn) if index % 2 == 0 else (gateway_turn, raw_turn):
                await turn()
        if upstream := await emulator_calls(bench.session, emulator_url) - before:
            message = f"{upstream} upstream calls while every answer should have been a hit"
            print(f"      error: {message}")
            gateways[-1].load.errors.add(message, upstream)
    finally:
        bench.children.stop(raw)
    return raws, gateways


def _ratio(value: float) -> str:
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def ratio_check(
    name: str, gateways: Sequence[Turn], raws: Sequence[Turn], goal: float | None
) -> Check:
    """A gateway's hit req/s over the raw baseline's, the median of rounds (None: a reference).

    It also prints the inverse ratio of their CPU per request, which other work on the
    machine sways far less than it sways req/s.
    """
    rates = [(g.load.rate, r.load.rate) for g, r in zip(gateways, raws, strict=True)]
    ratios = [g / r if r else 0.0 for g, r in rates]
    ratio = statistics.median(ratios)
    g_cpu, r_cpu = (statistics.median(t.cpu_ms for t in turns) for turns in (gateways, raws))
    print(
        f"  ratio {name}: {_ratio(ratio)} (rounds: {' '.join(_ratio(x) for x in ratios)}); "
        f"CPU per hit {g_cpu:.2f} ms against the raw baseline's {r_cpu:.2f} ms: "
        f"{_ratio(r_cpu / g_cpu if g_cpu else 0.0)}"
    )
    g, r = (statistics.median(rate) for rate in zip(*rates, strict=True))
    measured = f"{_ratio(ratio)} ({g:.0f}/{r:.0f} req/s)"
    if goal is None:
        return Check(name, measured, "-", None)
    return Check(name, measured, f">= {goal:g}", ratio >= goal)
