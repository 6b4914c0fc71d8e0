"""Benchmark promptbus's fast path: cache hits against a raw aiohttp baseline, then misses."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
from _common import (
    HOST,
    JSON_HEADERS,
    BenchError,
    Check,
    Child,
    Children,
    Errors,
    Load,
    describe_machine,
    emulator_calls,
    free_port,
    pass_fail,
    report,
    run_bench,
    start_emulator,
    start_promptbus,
    wait_healthy,
)
from aiohttp import web

SCRIPT: Final = Path(__file__).resolve()
GEMINI_PATH: Final = "/v1beta/models/gemini-2.5-flash:generateContent"
HIT_BODY: Final = b'{"model":"flash","prompt":"fast path benchmark: the one cached prompt"}'
RAW_ANSWER: Final = json.dumps(
    {"text": "a fixed answer from the raw baseline", "cache": {"hit": True}}
).encode()

QUICK_DURATION_S: Final = 3
WARMUP_S: Final = 1
EMULATOR_LATENCY_MS: Final = 200.0
OVERHEAD_WORKERS: Final = 4
THROUGHPUT_WORKERS: Final = 64

MIN_HIT_RATIO: Final = 0.5
MAX_HIT_P99_MS: Final = 5.0
MAX_MISS_OVERHEAD_MS: Final = 5.0
MIN_MISS_THROUGHPUT_RATIO: Final = 0.9

BodyFor = Callable[[int], bytes]
ExpectedHeader = tuple[str, str] | None
Request = Callable[[int], Awaitable[float | str]]


def serve_raw(port: int) -> None:
    """Serve the baseline: read the body, hash it, answer the JSON stored under that hash."""
    answers: dict[bytes, bytes] = {}

    async def generate(request: web.Request) -> web.Response:
        key = hashlib.sha256(await request.read()).digest()
        answer = answers.get(key)
        if answer is None:
            answer = answers[key] = RAW_ANSWER
        return web.Response(body=answer, content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/v1/generate", generate)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host=HOST, port=port, access_log=None, print=None)


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
) -> Load:
    """POST from `workers` keep-alive connections for `duration_s`, timing every request."""
    connector = aiohttp.TCPConnector(limit=workers)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def post(number: int) -> float | str:
            body = body_for(number)
            began = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=JSON_HEADERS) as response:
                    payload = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                return f"{type(exc).__name__}: {exc}"
            if response.status != 200:
                return f"HTTP {response.status}: {payload[:300].decode(errors='replace')}"
            if expect and (got := response.headers.get(expect[0])) != expect[1]:
                return f"{expect[0]} was {got}, not {expect[1]}"
            return time.perf_counter() - began

        return await timed_workers(post, workers, duration_s, stagger_s)


_WRK_TOTAL = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_WRK_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_WRK_WRONG = re.compile(r"^Wrong responses: (\d+)", re.MULTILINE)
_WRK_SOCKET = re.compile(r"Socket errors: (connect \d+, read \d+, write \d+, timeout \d+)")
_WRK_UNIT_MS: Final = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk_percentile_ms(output: str, q: int) -> float:
    match = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    if match is None:
        raise BenchError(f"no {q}% latency line in the wrk output:\n{output}")
    return float(match[1]) * _WRK_UNIT_MS[match[2]]


def parse_wrk(output: str) -> Load:
    """The numbers in the text wrk prints with --latency."""
    total, rps, wrong = (p.search(output) for p in (_WRK_TOTAL, _WRK_RPS, _WRK_WRONG))
    if total is None or rps is None or wrong is None:
        raise BenchError(f"cannot read the wrk output:\n{output}")
    errors = Errors()
    not_ok = int(wrong[1])
    if not_ok:
        errors.add(f"{not_ok} responses were not 200 or lacked the expected header", not_ok)
    if sockets := _WRK_SOCKET.search(output):
        failed = sum(int(n) for n in re.findall(r"\d+", sockets[1]))
        errors.add(f"socket errors: {sockets[1]}", failed)
    return Load(
        # wrk counts answered requests, wrong ones included; socket errors are apart.
        completed=int(total[1]) - not_ok,
        rate=float(rps[1]),
        p50_ms=_wrk_percentile_ms(output, 50),
        p99_ms=_wrk_percentile_ms(output, 99),
        errors=errors,
    )


_WRK_SCRIPT: Final = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]

local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) wrong = 0 end
function response(status, headers, body)
  if {wrong} then wrong = wrong + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("wrong") end
  io.write(string.format("Wrong responses: %d\\n", total))
end
"""


def write_wrk_script(path: Path, body: bytes, expect: ExpectedHeader) -> None:
    """A wrk Lua script that POSTs `body` as JSON and counts every wrong response."""
    text = body.decode()
    if "]==]" in text:
        raise ValueError("the body cannot sit inside a Lua [==[ ]==] string")
    wrong = "status ~= 200"
    if expect:
        wrong += f" or headers[{json.dumps(expect[0])}] ~= {json.dumps(expect[1])}"
    path.write_text(_WRK_SCRIPT.format(body=text, wrong=wrong))


def wrk_version(wrk: str) -> str:
    """The version wrk reports, for the header."""
    # wrk has no version flag: it prints its banner with the usage and exits 1.
    banner = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10)
    words = (banner.stdout or banner.stderr).split()
    return " ".join(words[:2]) or wrk


@dataclass
class Bench:
    """What every phase shares: the children, a probe session and every load run so far."""

    children: Children
    session: aiohttp.ClientSession
    work_dir: Path
    wrk: str | None
    duration_s: int
    connections: int
    loads: list[Load] = field(default_factory=list)

    async def fixed_load(
        self, url: str, body: bytes, duration_s: int, expect: ExpectedHeader
    ) -> Load:
        """Load `url` with one repeated body using wrk, or aiohttp without it."""
        if self.wrk is None:
            load = await aiohttp_load(url, lambda _: body, self.connections, duration_s, expect)
        else:
            load = await self._wrk_load(self.wrk, url, body, duration_s, expect)
        self.loads.append(load)
        return load

    async def client_floor(self, emulator_url: str, run_id: str) -> Load:
        """The LangChain client's own miss latency, measured in a process of its own."""
        argv = [sys.executable, str(SCRIPT), "--client-floor", emulator_url, "--run-id", run_id]
        argv += ["--duration", str(self.duration_s)]
        child = self.children.start("client-floor", argv)
        if await self._finish(child, self.duration_s + 60, "the client floor run") != 0:
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
        stagger_s = EMULATOR_LATENCY_MS / 1000
        load = await aiohttp_load(url, body_for, workers, duration_s, stagger_s=stagger_s)
        self.loads.append(load)
        return load

    async def _wrk_load(
        self, wrk: str, url: str, body: bytes, duration_s: int, expect: ExpectedHeader
    ) -> Load:
        script = self.work_dir / "post.lua"
        write_wrk_script(script, body, expect)
        # One thread: wrk keeps one core and the server under test gets the other.
        argv = [wrk, "-t1", f"-c{self.connections}", f"-d{duration_s}s", "--latency"]
        child = self.children.start("wrk", [*argv, "-s", str(script), url])
        if code := await self._finish(child, duration_s + 30, "wrk"):
            raise BenchError(f"wrk exited with {code}:\n{child.output()}")
        return parse_wrk(child.output())

    async def _finish(self, child: Child, timeout_s: float, what: str) -> int:
        """The child's exit code; stop it and fail if it runs longer than `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (code := child.process.poll()) is None:
            if time.monotonic() > deadline:
                self.children.stop(child)
                raise BenchError(f"{what} did not finish:\n{child.tail()}")
            await asyncio.sleep(0.05)
        return code

    async def post(self, url: str, body: bytes) -> tuple[int, str, str]:
        """One POST: status, X-Cache header and body text."""
        async with self.session.post(url, data=body, headers=JSON_HEADERS) as response:
            return response.status, response.headers.get("X-Cache", ""), await response.text()

    async def emulator_calls(self, emulator_url: str) -> int:
        """How many generate calls the emulator has received."""
        return await emulator_calls(self.session, emulator_url)


def show(label: str, load: Load) -> None:
    """Print one load run's numbers and its first errors."""
    print(
        f"  {label:<26}{load.rate:>10.1f} req/s   p50 {load.p50_ms:8.2f} ms   "
        f"p99 {load.p99_ms:8.2f} ms   requests {load.completed:>7}   errors {load.errors.count}"
    )
    load.errors.show()


def verdict(check: Check) -> Check:
    """Print `check` as a target line and hand it back."""
    print(f"  target {check.name}: {check.measured}, goal {check.goal}: {pass_fail(check.passed)}")
    return check


async def hit_phase(bench: Bench, raw_url: str, promptbus_url: str) -> list[Check]:
    """Phase 1: cache-hit throughput of promptbus against the raw baseline."""
    tool = "wrk -t1" if bench.wrk else "aiohttp"
    print(
        f"\n== 1. hit throughput: {tool}, {bench.connections} connections, "
        f"{bench.duration_s}s each after a {WARMUP_S}s warm-up =="
    )
    for url in (raw_url, promptbus_url):
        status, _, text = await bench.post(url, HIT_BODY)
        if status != 200:
            raise BenchError(f"warming {url} answered {status}: {text[:300]}")
    status, cache, text = await bench.post(promptbus_url, HIT_BODY)
    if status != 200 or cache != "HIT":
        raise BenchError(f"promptbus did not answer from its cache: {status} {cache} {text[:300]}")
    results: dict[str, Load] = {}
    targets: list[tuple[str, str, ExpectedHeader]] = [
        ("raw aiohttp", raw_url, None),
        ("promptbus (cache hit)", promptbus_url, ("X-Cache", "HIT")),
    ]
    for label, url, expect in targets:
        await bench.fixed_load(url, HIT_BODY, WARMUP_S, expect)
        results[label] = load = await bench.fixed_load(url, HIT_BODY, bench.duration_s, expect)
        show(label, load)
    status, cache, _ = await bench.post(promptbus_url, HIT_BODY)
    if status != 200 or cache != "HIT":
        raise BenchError(f"promptbus stopped answering from its cache: {status} {cache}")
    raw, promptbus = results["raw aiohttp"], results["promptbus (cache hit)"]
    ratio = promptbus.rate / raw.rate if raw.rate else 0.0
    print(f"  ratio promptbus/raw: {ratio:.2f}")
    return [
        verdict(
            Check(
                "hit throughput promptbus/raw",
                f"{ratio:.2f} ({promptbus.rate:.0f}/{raw.rate:.0f} req/s)",
                f">= {MIN_HIT_RATIO:g}",
                ratio >= MIN_HIT_RATIO,
            )
        ),
        verdict(
            Check(
                "promptbus hit p99",
                f"{promptbus.p99_ms:.2f} ms",
                f"<= {MAX_HIT_P99_MS:g} ms",
                promptbus.p99_ms <= MAX_HIT_P99_MS,
            )
        ),
    ]


def gemini_body(label: str) -> BodyFor:
    """Unique generateContent bodies, one per request number."""
    return lambda n: json.dumps(
        {"contents": [{"role": "user", "parts": [{"text": f"{label} {n}"}]}]}
    ).encode()


def promptbus_body(label: str) -> BodyFor:
    """Unique /v1/generate bodies, one per request number, so that none hits the cache."""
    return lambda n: json.dumps({"model": "flash", "prompt": f"{label} {n}"}).encode()


async def promptbus_misses(
    bench: Bench, emulator_url: str, promptbus_url: str, workers: int, label: str, warm: str
) -> Load:
    """Warm up, then load promptbus with unique prompts; an error unless each made one call."""
    await bench.unique_load(promptbus_url, promptbus_body(warm), workers, WARMUP_S)
    calls_before = await bench.emulator_calls(emulator_url)
    load = await bench.unique_load(promptbus_url, promptbus_body(label), workers, bench.duration_s)
    show("promptbus (miss)", load)
    upstream = await bench.emulator_calls(emulator_url) - calls_before
    sent = load.completed + load.errors.count
    print(f"  emulator calls during the run: {upstream} for {sent} requests to promptbus")
    if upstream != sent:
        load.errors.add(f"{sent} requests to promptbus but {upstream} upstream calls")
    return load


async def overhead_phase(
    bench: Bench, emulator_url: str, promptbus_url: str, run_id: str
) -> list[Check]:
    """Phase 2: what promptbus adds to the latency of a miss."""
    print(
        f"\n== 2. miss overhead: aiohttp, {OVERHEAD_WORKERS} workers, unique prompts, "
        f"emulator at {EMULATOR_LATENCY_MS:g} ms, {bench.duration_s}s each =="
    )
    direct_url = f"{emulator_url}{GEMINI_PATH}"
    await bench.unique_load(direct_url, gemini_body(f"warm {run_id}"), OVERHEAD_WORKERS, WARMUP_S)
    direct = await bench.unique_load(
        direct_url, gemini_body(f"direct {run_id}"), OVERHEAD_WORKERS, bench.duration_s
    )
    show("emulator directly", direct)
    gateway = await promptbus_misses(
        bench, emulator_url, promptbus_url, OVERHEAD_WORKERS, f"overhead {run_id}", f"warm {run_id}"
    )
    overhead = gateway.p50_ms - direct.p50_ms
    tail = gateway.p99_ms - direct.p99_ms
    print(f"  p50 overhead: {overhead:.2f} ms   p99 overhead: {tail:.2f} ms")
    floor = await bench.client_floor(emulator_url, run_id)
    show("langchain client alone", floor)
    print(
        f"  the client library alone adds {floor.p50_ms - direct.p50_ms:.2f} ms at p50; "
        f"promptbus adds {gateway.p50_ms - floor.p50_ms:.2f} ms above it"
    )
    return [
        verdict(
            Check(
                "miss p50 overhead",
                f"{overhead:.2f} ms ({gateway.p50_ms:.1f} - {direct.p50_ms:.1f})",
                f"<= {MAX_MISS_OVERHEAD_MS:g} ms",
                overhead <= MAX_MISS_OVERHEAD_MS,
            )
        )
    ]


def run_client_floor(emulator_url: str, run_id: str, duration_s: float) -> None:
    """Measure the LangChain client alone and print its numbers as one JSON line."""
    load = asyncio.run(client_floor_load(emulator_url, OVERHEAD_WORKERS, duration_s, run_id))
    print(
        json.dumps(
            {
                "requests": load.completed,
                "rps": load.rate,
                "p50_ms": load.p50_ms,
                "p99_ms": load.p99_ms,
                "errors": load.errors.samples,
                "error_count": load.errors.count,
            }
        )
    )


async def client_floor_load(
    emulator_url: str, workers: int, duration_s: float, run_id: str
) -> Load:
    """The same staggered load through LangChain's Gemini client alone: the floor of a miss.

    promptbus must call Gemini through `ChatGoogleGenerativeAI`; this measures what
    that client costs by itself, configured as promptbus configures it.
    """
    from langchain_core.messages import HumanMessage
    from langchain_google_genai import ChatGoogleGenerativeAI

    llm = ChatGoogleGenerativeAI(
        model="gemini-2.5-flash",
        google_api_key="emulator",
        base_url=emulator_url,
        api_version="v1beta",
        max_retries=1,
        timeout=30,
        temperature=None,
    )
    for warm in range(3):  # the client's first calls build its SDK client and session
        await llm.ainvoke([HumanMessage(content=f"warm {run_id} {warm}")])

    async def invoke(number: int) -> float | str:
        began = time.perf_counter()
        try:
            await llm.ainvoke([HumanMessage(content=f"floor {run_id} {number}")])
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return time.perf_counter() - began

    return await timed_workers(invoke, workers, duration_s, EMULATOR_LATENCY_MS / 1000)


async def throughput_phase(
    bench: Bench, emulator_url: str, promptbus_url: str, run_id: str
) -> list[Check]:
    """Phase 3: miss throughput with many requests waiting on the upstream at once."""
    ideal = THROUGHPUT_WORKERS / (EMULATOR_LATENCY_MS / 1000)
    print(
        f"\n== 3. miss throughput: aiohttp, {THROUGHPUT_WORKERS} workers, unique prompts, "
        f"emulator at {EMULATOR_LATENCY_MS:g} ms, {bench.duration_s}s, ideal {ideal:g} req/s =="
    )
    load = await promptbus_misses(
        bench,
        emulator_url,
        promptbus_url,
        THROUGHPUT_WORKERS,
        f"many {run_id}",
        f"warm-many {run_id}",
    )
    ratio = load.rate / ideal
    print(f"  achieved/ideal: {ratio:.2f}")
    return [
        verdict(
            Check(
                "miss throughput achieved/ideal",
                f"{ratio:.2f} ({load.rate:.0f}/{ideal:g} req/s)",
                f">= {MIN_MISS_THROUGHPUT_RATIO:g}",
                ratio >= MIN_MISS_THROUGHPUT_RATIO,
            )
        )
    ]


async def run(args: argparse.Namespace, children: Children, work_dir: Path) -> int:
    """Start the servers, run the three phases and print the verdict; 0 if every target passed."""
    duration_s = QUICK_DURATION_S if args.quick else args.duration
    wrk = shutil.which("wrk")
    print(f"machine: {describe_machine()}")
    if wrk is None:
        print(f"load tool (phase 1): aiohttp in the bench process, {args.connections} connections")
    else:
        print(f"load tool (phase 1): {wrk_version(wrk)} ({wrk}), 1 thread")
    print("load tool (phases 2-3): aiohttp in the bench process")

    raw_port = free_port()
    raw = children.start(
        "raw", [sys.executable, str(SCRIPT), "--raw-server", "--port", str(raw_port)]
    )
    emulator, emulator_url = start_emulator(children, EMULATOR_LATENCY_MS)
    print(f"promptbus: {'ingress only (--no-worker)' if args.no_worker else 'embedded default'}")
    serve_args = ["--no-worker"] if args.no_worker else []
    promptbus, promptbus_base = start_promptbus(children, emulator_url, *serve_args)
    promptbus_url = f"{promptbus_base}/v1/generate"
    run_id = os.urandom(4).hex()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(
            wait_healthy(session, raw, f"http://{HOST}:{raw_port}/healthz"),
            wait_healthy(session, emulator, f"{emulator_url}/healthz"),
            wait_healthy(session, promptbus, f"{promptbus_base}/healthz"),
        )
        bench = Bench(children, session, work_dir, wrk, duration_s, args.connections)
        checks = await hit_phase(bench, f"http://{HOST}:{raw_port}/v1/generate", promptbus_url)
        checks += await overhead_phase(bench, emulator_url, promptbus_url, run_id)
        checks += await throughput_phase(bench, emulator_url, promptbus_url, run_id)
    errors = sum(load.errors.count for load in bench.loads)
    checks.append(Check("no failed requests", f"{errors} errors", "0", errors == 0))
    return report(checks)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per phase (default 10)")
    parser.add_argument(
        "--connections", type=int, default=16, help="connections for the hit phase (default 16)"
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DURATION_S}s per phase")
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="run promptbus as an ingress only, as production ingress processes run",
    )
    parser.add_argument("--raw-server", action="store_true", help="run only the raw baseline")
    parser.add_argument("--client-floor", metavar="EMULATOR_URL", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", default="floor", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help="port of the raw baseline server")
    args = parser.parse_args(argv)
    if args.raw_server and args.port is None:
        parser.error("--raw-server needs --port")
    if args.duration < 1 or args.connections < 1:
        parser.error("--duration and --connections must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench, or the raw baseline server with --raw-server."""
    args = parse_args(argv)
    if args.raw_server:
        serve_raw(args.port)
        return 0
    if args.client_floor:
        run_client_floor(args.client_floor, args.run_id, args.duration)
        return 0
    return run_bench(lambda children, work_dir: run(args, children, work_dir))


if __name__ == "__main__":
    sys.exit(main())
