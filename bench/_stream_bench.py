"""What the streams bench's phases share: its endpoints, bodies and TTFC runs."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from _common import Check, Load, emulator_calls
from _fast_bench import Bench, show
from _machine import CpuWindow
from _sse import StreamFormat, ttfc_load

WARMUP_S: Final = 1
# The emulator takes any bearer key on its OpenAI API; this is pipeline/emulator's EMULATOR_API_KEY
# (bench/ never imports the product package, which bench/pipeline.py shadows).
EMULATOR_KEY: Final = "emulator"


@dataclass(frozen=True)
class Surface:
    """One streamed endpoint: its URL, a body for a prompt, its events and headers."""

    label: str
    url: str
    body: Callable[[str], bytes]
    fmt: StreamFormat
    headers: Mapping[str, str] | None = None
    cache: str | None = None


def generate_body(prompt: str, stream: bool = True) -> bytes:
    """A promptbus `/v1/generate` body for the flash model."""
    return json.dumps({"model": "flash", "prompt": prompt, "stream": stream}).encode()


def chat_body(model: str, prompt: str, stream: bool = True) -> bytes:
    """A Chat Completions body of one user message."""
    messages = [{"role": "user", "content": prompt}]
    return json.dumps({"model": model, "messages": messages, "stream": stream}).encode()


def gemini_body(prompt: str) -> bytes:
    """A Gemini `streamGenerateContent` body of one user turn."""
    return json.dumps({"contents": [{"role": "user", "parts": [{"text": prompt}]}]}).encode()


async def ttfc_run(
    bench: Bench,
    surface: Surface,
    emulator_url: str,
    run_id: str,
    workers: int,
    pids: Mapping[str, int],
    under_test: str,
) -> Load:
    """Warm up, then TTFC of unique prompts; an error unless each made one upstream call.

    `pids` names the processes whose CPU is printed; `under_test` is the one timed per request.
    """

    # A nonce per call: request numbers start at 0 in every load, and a prompt seen before
    # (in an earlier round) would be a cache hit.
    nonce = os.urandom(4).hex()

    def body_for(tag: str) -> Callable[[int], bytes]:
        prompt = f"{tag} {surface.label} {run_id}-{nonce}"
        return lambda n: surface.body(f"{prompt} {n}: how does a stream start")

    url, fmt, headers, stagger_s = surface.url, surface.fmt, surface.headers, bench.stagger_s
    await ttfc_load(url, body_for("warm"), fmt, workers, WARMUP_S, stagger_s, headers)
    before = await emulator_calls(bench.session, emulator_url)
    window = CpuWindow(pids)
    load = await ttfc_load(
        url, body_for("ttfc"), fmt, workers, bench.duration_s, stagger_s, headers, surface.cache
    )
    cpu = window.describe(load.completed, under_test)[0]
    upstream = await emulator_calls(bench.session, emulator_url) - before
    sent = load.completed + load.errors.count
    if upstream != sent:
        load.errors.add(f"{sent} streams to {surface.label} but {upstream} upstream calls")
    bench.loads.append(load)
    show(surface.label, load)
    print(cpu)
    return load


def overhead_check(
    name: str, gateway: Sequence[Load], direct: Sequence[Load], goal_ms: float | None
) -> Check:
    """The p50 TTFC a gateway adds over the emulator, the median of rounds (goal None: a reference).

    Round k of the gateway ran right after round k of the emulator directly.
    """
    overheads = _overheads(gateway, direct)
    tails = [g.p99_ms - d.p99_ms for g, d in zip(gateway, direct, strict=True)]
    overhead = statistics.median(overheads)
    print(
        f"  {name}: p50 {overhead:+.2f} ms (rounds: {_listed(overheads)}), "
        f"p99 {statistics.median(tails):+.2f} ms, over the emulator directly"
    )
    g50, d50 = (statistics.median(x.p50_ms for x in loads) for loads in (gateway, direct))
    measured = f"{overhead:.2f} ms ({g50:.1f} - {d50:.1f})"
    if goal_ms is None:
        return Check(name, measured, "-", None)
    return Check(name, measured, f"<= {goal_ms:g} ms", overhead <= goal_ms)


def p50_overhead(gateway: Sequence[Load], direct: Sequence[Load]) -> float:
    """The median over rounds of the p50 TTFC a gateway adds over the emulator."""
    return statistics.median(_overheads(gateway, direct))


def _overheads(gateway: Sequence[Load], direct: Sequence[Load]) -> list[float]:
    return [g.p50_ms - d.p50_ms for g, d in zip(gateway, direct, strict=True)]


def _listed(values: Sequence[float]) -> str:
    return " ".join(f"{v:+.2f}" for v in values)
