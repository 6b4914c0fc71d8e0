"""Benchmark promptbus's streams: time to first chunk on a miss, replayed and plain cache hits."""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import _litellm
import aiohttp
from _client_floor import run_client_floor
from _common import (
    BenchError,
    Check,
    Children,
    Load,
    describe_machine,
    free_port,
    report,
    run_bench,
    start_emulator_up,
    start_promptbus,
    wait_healthy,
)
from _fast_bench import Bench, show, verdict
from _machine import wait_quiet
from _raw_server import serve_raw
from _relay import RELAY_PATH, serve_relay
from _sse import GEMINI_SSE, OPENAI_SSE, PROMPTBUS_SSE
from _stream_bench import (
    EMULATOR_KEY,
    Surface,
    chat_body,
    gemini_body,
    generate_body,
    overhead_check,
    p50_overhead,
    ttfc_run,
)
from _stream_hits import HitHeader, Hits, hits_against_raw, ratio_check
from _wrk import wrk_version

SCRIPT: Final = Path(__file__).resolve()
GEMINI_STREAM_PATH: Final = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
REPLAY_PROMPT: Final = "streams benchmark: the one prompt replayed as a stream, over and over"
CHAT_PROMPT: Final = "streams benchmark: the one cached chat completion"
PROMPTBUS_HIT: Final[HitHeader] = ("X-Cache", "HIT")
# LiteLLM names the cache key on a hit only; its value is the same for every hit of one body.
LITELLM_HIT: Final[HitHeader] = ("x-litellm-cache-key", None)

QUICK_DURATION_S: Final = 3
EMULATOR_LATENCY_MS: Final = 200.0
TTFC_WORKERS: Final = 4
# LiteLLM's hits take longer than wrk's 2 s under 16 connections here: wait for them.
WRK_TIMEOUT_S: Final = 10
MAX_TTFC_MS: Final = 5.0
MIN_HIT: Final = 0.5
# Other people's work on this shared machine: wait, at most so long, for it to stay under this.
QUIET_CORES: Final = 0.5
QUIET_WAIT_S: Final = 30.0


@dataclass(frozen=True)
class Phases:
    """What every phase needs: the bench, the emulator, the run's id and rounds per figure."""

    bench: Bench
    emulator_url: str
    run_id: str
    rounds: int

    async def quiet(self, what: str) -> None:
        """Wait (a bounded time) for other work on the machine to calm down; say how busy."""
        busy = await wait_quiet(QUIET_CORES, QUIET_WAIT_S)
        print(f"  before {what}: the machine kept {busy:.2f} cores busy")

    async def ttfc(
        self, surfaces: Sequence[tuple[Surface, str]], pids: dict[str, int]
    ) -> list[list[Load]]:
        """Each surface's TTFC loads (named with its process under test), in turn per round."""
        loads: list[list[Load]] = [[] for _ in surfaces]
        for index in range(self.rounds):
            print(f"  round {index + 1} of {self.rounds}")
            for runs, (surface, under_test) in zip(loads, surfaces, strict=True):
                load = await ttfc_run(
                    self.bench,
                    surface,
                    self.emulator_url,
                    self.run_id,
                    TTFC_WORKERS,
                    pids,
                    under_test,
                )
                runs.append(load)
        return loads

    async def hits(self, hits: Hits, name: str, goal: float | None) -> Check:
        """The hit throughput of `hits` against the raw baseline, as a check."""
        raws, gateways = await hits_against_raw(self.bench, hits, self.emulator_url, self.rounds)
        return verdict(ratio_check(name, gateways, raws, goal))


async def ttfc_phase(
    phases: Phases, promptbus_url: str, relay_url: str, pids: dict[str, int]
) -> list[Check]:
    """Phase 1: what promptbus adds to the time to first chunk of a streamed miss.

    Two floors are printed with it, with no target: a bare aiohttp relay (one HTTP hop
    in Python, nothing else) and LangChain's astream alone, the two parts of a miss
    promptbus cannot go below.
    """
    bench = phases.bench
    print(
        f"\n== 1. time to first chunk: aiohttp, {TTFC_WORKERS} workers, unique prompts, "
        f"emulator at {EMULATOR_LATENCY_MS:g} ms, {bench.duration_s}s each =="
    )
    gemini = f"{phases.emulator_url}{GEMINI_STREAM_PATH}"
    generate, chat = f"{promptbus_url}/v1/generate", f"{promptbus_url}/v1/chat/completions"
    flash = functools.partial(chat_body, "flash")
    surfaces = [
        (Surface("emulator (gemini sse)", gemini, gemini_body, GEMINI_SSE), "emulator"),
        (
            Surface("promptbus generate", generate, generate_body, PROMPTBUS_SSE, cache="MISS"),
            "promptbus",
        ),
        (Surface("promptbus chat", chat, flash, OPENAI_SSE, cache="MISS"), "promptbus"),
        (Surface("bare aiohttp relay", relay_url, gemini_body, GEMINI_SSE), "relay"),
    ]
    await phases.quiet("phase 1")
    direct, *gateways, relayed = await phases.ttfc(surfaces, pids)
    checks = [
        verdict(overhead_check(f"TTFC p50 overhead, {path} stream", loads, direct, MAX_TTFC_MS))
        for path, loads in zip(("/v1/generate", "/v1/chat/completions"), gateways, strict=True)
    ]
    checks.append(
        verdict(overhead_check("TTFC p50 overhead, bare aiohttp relay", relayed, direct, None))
    )
    floor = await bench.client_floor(phases.emulator_url, phases.run_id)
    show("langchain astream alone", floor)
    direct_p50 = statistics.median(load.p50_ms for load in direct)
    langchain, hop = floor.p50_ms - direct_p50, p50_overhead(relayed, direct)
    print(
        f"  LangChain's astream alone, in a process of its own, adds {langchain:.2f} ms to the "
        f"emulator's TTFC p50; with the relay's hop ({hop:.2f} ms) that is {langchain + hop:.2f} "
        "ms before promptbus does anything"
    )
    checks.append(
        Check("TTFC floor: relay hop + LangChain astream", f"{langchain + hop:.2f} ms", "-", None)
    )
    return checks


async def hit_phases(phases: Phases, promptbus_url: str, pids: dict[str, int]) -> list[Check]:
    """Phases 2 and 3: a cached answer replayed as a stream, and a plain chat completion hit."""
    bench = phases.bench
    tool = "wrk -t1" if bench.wrk else "aiohttp"
    print(
        f"\n== 2. cached-stream replay: {tool}, {bench.connections} connections, "
        f"{bench.duration_s}s each, every answer a stream with X-Cache: HIT, read whole =="
    )
    await phases.quiet("phase 2")
    replay = Hits(
        "promptbus replay (hit)",
        f"{promptbus_url}/v1/generate",
        generate_body(REPLAY_PROMPT),
        PROMPTBUS_HIT,
        PROMPTBUS_SSE,
        pids,
        "promptbus",
    )
    checks = [await phases.hits(replay, "stream replay throughput promptbus/raw", MIN_HIT)]
    print(
        f"\n== 3. /v1/chat/completions cache hits: {tool}, {bench.connections} connections, "
        f"{bench.duration_s}s each =="
    )
    await phases.quiet("phase 3")
    chat = Hits(
        "promptbus chat (hit)",
        f"{promptbus_url}/v1/chat/completions",
        chat_body("flash", CHAT_PROMPT, stream=False),
        PROMPTBUS_HIT,
        None,
        pids,
        "promptbus",
    )
    checks.append(await phases.hits(chat, "chat hit throughput promptbus/raw", MIN_HIT))
    return checks


async def litellm_phases(phases: Phases, command: Path, pids: dict[str, int]) -> list[Check]:
    """Phases 1-3 against LiteLLM's proxy, as references with no target; [] if it cannot run."""
    bench, emulator_url = phases.bench, phases.emulator_url
    checks: list[Check] = []
    first_load = len(bench.loads)
    model = _litellm.LITELLM_MODEL
    try:
        proxy = await _litellm.start(bench, command, emulator_url)
        pids = {**pids, "litellm": proxy.pid}
        print(
            f"\n== 4. LiteLLM {_litellm.LITELLM_VERSION} on the emulator's OpenAI API ({model}): "
            f"phases 1-3 again, reference, no target =="
        )
        url, body = f"{proxy.url}/v1/chat/completions", functools.partial(chat_body, model)
        key = {"Authorization": f"Bearer {EMULATOR_KEY}"}
        direct = Surface(
            "emulator (openai sse)", f"{emulator_url}/v1/chat/completions", body, OPENAI_SSE, key
        )
        gateway = Surface("litellm chat", url, body, OPENAI_SSE, proxy.headers)
        await phases.quiet("LiteLLM's phase 1")
        direct_loads, gateway_loads = await phases.ttfc(
            [(direct, "emulator"), (gateway, "litellm")], pids
        )
        name = "LiteLLM TTFC p50 overhead, chat stream"
        checks.append(verdict(overhead_check(name, gateway_loads, direct_loads, None)))
        for what, label, stream, fmt, prompt in (
            ("stream replay/raw", "litellm replay (hit)", True, OPENAI_SSE, REPLAY_PROMPT),
            ("chat hit/raw", "litellm chat (hit)", False, None, CHAT_PROMPT),
        ):
            await phases.quiet(f"LiteLLM's {what}")
            hits = Hits(
                label,
                url,
                chat_body(model, prompt, stream),
                LITELLM_HIT,
                fmt,
                pids,
                "litellm",
                proxy.headers,
            )
            checks.append(await phases.hits(hits, f"LiteLLM {what}", None))
    except BenchError as exc:
        print(f"LiteLLM: could not run here ({str(exc).splitlines()[0]}); going on without it")
    errors = sum(load.errors.count for load in bench.loads[first_load:])
    if checks:
        checks.append(Check("LiteLLM failed requests", f"{errors} errors", "-", None))
    return checks


async def run(args: argparse.Namespace, children: Children, work_dir: Path) -> int:
    """Start the servers, run the phases and print the verdict; 0 if every target passed."""
    duration_s, rounds = (QUICK_DURATION_S, 1) if args.quick else (args.duration, args.rounds)
    wrk = shutil.which("wrk")
    print(f"machine: {describe_machine()}")
    if wrk is None:
        print(f"load tool (hits): aiohttp in the bench process, {args.connections} connections")
    else:
        print(f"load tool (hits): {wrk_version(wrk)} ({wrk}), 1 thread")
    print("load tool (time to first chunk): aiohttp in the bench process, SSE read line by line")
    print(f"each figure: the median of {rounds} round(s) of {duration_s}s loads, taken in turn")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        stagger_s = EMULATOR_LATENCY_MS / 1000
        bench = Bench(
            children,
            session,
            work_dir,
            wrk,
            duration_s,
            args.connections,
            SCRIPT,
            stagger_s,
            WRK_TIMEOUT_S,
        )
        command: Path | str = "skipped (--litellm=off)"
        if args.litellm == "on":
            command = await _litellm.install(bench)
        if isinstance(command, str):
            print(f"LiteLLM: not run: {command}")
        emulator, emulator_url = await start_emulator_up(children, session, EMULATOR_LATENCY_MS)
        promptbus, promptbus_url = start_promptbus(children, emulator_url)
        await wait_healthy(session, promptbus, f"{promptbus_url}/healthz")
        print(f"promptbus: pid {promptbus.process.pid}, {promptbus_url}, embedded default")
        relay_port = free_port()
        relay_argv = [sys.executable, str(SCRIPT), "--relay", emulator_url]
        relay = children.start("relay", [*relay_argv, "--port", str(relay_port)])
        relay_url = f"http://127.0.0.1:{relay_port}"
        await wait_healthy(session, relay, f"{relay_url}/healthz")
        phases = Phases(bench, emulator_url, os.urandom(4).hex(), rounds)
        pids = {"emulator": emulator.process.pid}
        with_promptbus = {**pids, "promptbus": promptbus.process.pid}
        checks = await ttfc_phase(
            phases,
            promptbus_url,
            f"{relay_url}{RELAY_PATH}?alt=sse",
            {**with_promptbus, "relay": relay.process.pid},
        )
        children.stop(relay)
        checks += await hit_phases(phases, promptbus_url, with_promptbus)
        errors = sum(load.errors.count for load in bench.loads)
        checks.append(Check("no failed requests", f"{errors} errors", "0", errors == 0))
        # LiteLLM runs alone: promptbus's embedded worker would share the CPU with it.
        children.stop(promptbus)
        if isinstance(command, Path):
            checks += await litellm_phases(phases, command, pids)
    return report(checks)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per load (default 10)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of loads per figure (default 3)"
    )
    parser.add_argument(
        "--connections", type=int, default=16, help="connections for the hit phases (default 16)"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"one round of {QUICK_DURATION_S}s loads"
    )
    parser.add_argument(
        "--litellm",
        choices=("on", "off"),
        default="on",
        help="run LiteLLM's proxy on the same phases, for reference (default on)",
    )
    parser.add_argument("--raw-server", action="store_true", help="run only the raw baseline")
    parser.add_argument("--port", type=int, help="port of the raw baseline server")
    parser.add_argument("--answer", help="file of the bytes the raw baseline answers")
    parser.add_argument("--content-type", default="application/json", help=argparse.SUPPRESS)
    parser.add_argument("--client-floor", metavar="EMULATOR_URL", help=argparse.SUPPRESS)
    parser.add_argument("--relay", metavar="EMULATOR_URL", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", default="floor", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_server and (args.port is None or args.answer is None):
        parser.error("--raw-server needs --port and --answer")
    if not 1 <= args.duration <= 600 or not 1 <= args.rounds <= 20:
        parser.error("--duration must be 1-600 and --rounds 1-20")
    if not 1 <= args.connections <= 1024:
        parser.error("--connections must be 1-1024")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench, the raw baseline server (--raw-server) or the client floor."""
    args = parse_args(argv)
    if args.raw_server:
        serve_raw(args.port, Path(args.answer).read_bytes(), args.content_type)
        return 0
    if args.relay:
        if args.port is None:
            raise SystemExit("--relay needs --port")
        serve_relay(args.port, args.relay)
        return 0
    if args.client_floor:
        stagger_s = EMULATOR_LATENCY_MS / 1000
        run_client_floor(
            args.client_floor, args.run_id, args.duration, TTFC_WORKERS, stagger_s, stream=True
        )
        return 0
    return run_bench(lambda children, work_dir: run(args, children, work_dir))


if __name__ == "__main__":
    sys.exit(main())
