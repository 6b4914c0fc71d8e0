"""Benchmark what observability costs a cache hit: promptbus with it on against off, one run.

Two `promptbus serve` processes on one emulator, alike but for the settings given with
`--on` and `--off` (by default `PROMPTBUS_METRICS=true` / `false`; add the keys and ledger
settings as they come; `--key` makes the 'on' side require an API key, sent on every
request). Each side keeps its data (its SQLite ledger) in a directory of its own. The same
cached body is sent to each in turns (on, off, off, on...,
so that drift on a shared machine falls on both), and the medians are compared: hit
throughput on/off >= 0.9 and hit p99 on - off <= 1 ms.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import aiohttp
from _common import (
    PROMPTBUS,
    BenchError,
    Check,
    Children,
    Load,
    child_env,
    describe_machine,
    report,
    run_bench,
    start_emulator,
    start_promptbus,
    wait_healthy,
)
from _fast_bench import Bench, show, verdict
from _wrk import wrk_version

SCRIPT: Final = Path(__file__).resolve()
HIT_BODY: Final = b'{"model":"flash","prompt":"observability benchmark: the one cached prompt"}'
WARMUP_S: Final = 1
MIN_RATIO: Final = 0.9
MAX_P99_DELTA_MS: Final = 1.0


def settings(pairs: Sequence[str]) -> dict[str, str]:
    """`NAME=VALUE` pairs as environment overrides."""
    found = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.startswith("PROMPTBUS_"):
            raise SystemExit(f"not a PROMPTBUS_NAME=VALUE setting: {pair!r}")
        found[name] = value
    return found


async def run(args: argparse.Namespace, children: Children, work_dir: Path) -> int:
    """Start both servers, load them in turns and print the verdict; 0 if both targets pass."""
    wrk = shutil.which("wrk")
    print(f"machine: {describe_machine()}")
    print(
        f"load tool: {wrk_version(wrk) + ', 1 thread' if wrk else 'aiohttp in the bench process'}"
    )
    emulator, emulator_url = start_emulator(children, 0.0)
    sides = {"on": settings(args.on), "off": settings(args.off)}
    for side, overrides in sides.items():
        overrides.setdefault("PROMPTBUS_DATA_DIR", str(work_dir / side))
    headers = {"on": _key_headers(sides["on"]) if args.key else {}, "off": {}}
    urls: dict[str, str] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await wait_healthy(session, emulator, f"{emulator_url}/healthz")
        for side, overrides in sides.items():
            child, base = start_promptbus(children, emulator_url, "--no-worker", **overrides)
            await wait_healthy(session, child, f"{base}/healthz")
            urls[side] = f"{base}/v1/generate"
            print(f"{side}: {' '.join(f'{k}={v}' for k, v in overrides.items())}")
        bench = Bench(children, session, work_dir, wrk, args.duration, args.connections, SCRIPT, 0)
        for side, url in urls.items():
            await bench.post(url, HIT_BODY, headers[side])
            status, cache, text = await bench.post(url, HIT_BODY, headers[side])
            if status != 200 or cache != "HIT":
                raise BenchError(f"{url} did not answer from its cache: {status} {text[:300]}")
        loads: dict[str, list[Load]] = {"on": [], "off": []}
        expect = ("X-Cache", "HIT")
        for round_ in range(args.rounds):
            for side in ("on", "off") if round_ % 2 == 0 else ("off", "on"):
                sent = headers[side]
                await bench.fixed_load(urls[side], HIT_BODY, WARMUP_S, expect, sent)
                load = await bench.fixed_load(urls[side], HIT_BODY, args.duration, expect, sent)
                loads[side].append(load)
                show(f"round {round_ + 1}, {side}", load)
    rate = {side: statistics.median(load.rate for load in runs) for side, runs in loads.items()}
    p99 = {side: statistics.median(load.p99_ms for load in runs) for side, runs in loads.items()}
    ratio = rate["on"] / rate["off"] if rate["off"] else 0.0
    delta = p99["on"] - p99["off"]
    errors = sum(load.errors.count for runs in loads.values() for load in runs)
    return report(
        [
            verdict(
                Check(
                    "hit throughput on/off (medians)",
                    f"{ratio:.2f} ({rate['on']:.0f}/{rate['off']:.0f} req/s)",
                    f">= {MIN_RATIO:g}",
                    ratio >= MIN_RATIO,
                )
            ),
            verdict(
                Check(
                    "hit p99 on - off (medians)",
                    f"{delta:+.2f} ms ({p99['on']:.2f} vs {p99['off']:.2f})",
                    f"<= {MAX_P99_DELTA_MS:g} ms",
                    delta <= MAX_P99_DELTA_MS,
                )
            ),
            Check("no failed requests", f"{errors} errors", "0", errors == 0),
        ]
    )


def _key_headers(overrides: dict[str, str]) -> dict[str, str]:
    """Make a tenant and key in the 'on' side's database (the CLI); its Authorization header."""
    env = {**child_env(**overrides), "PROMPTBUS_LOG_LEVEL": "error"}

    def cli(*argv: str) -> str:
        done = subprocess.run(
            [*PROMPTBUS, *argv], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"promptbus {' '.join(argv)} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    cli("tenants", "create", "bench")
    key = cli("keys", "create", "--tenant", "bench")
    print("on: requires an API key (tenant bench), sent as a bearer token")
    return {"Authorization": f"Bearer {key}"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=5, help="seconds per load (default 5)")
    parser.add_argument("--rounds", type=int, default=4, help="loads of each side (default 4)")
    parser.add_argument("--connections", type=int, default=16, help="connections (default 16)")
    parser.add_argument(
        "--on", nargs="*", default=["PROMPTBUS_METRICS=true"], help="settings of the 'on' side"
    )
    parser.add_argument(
        "--off", nargs="*", default=["PROMPTBUS_METRICS=false"], help="settings of the 'off' side"
    )
    parser.add_argument(
        "--key", action="store_true", help="the 'on' side requires an API key (made by the bench)"
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.rounds < 1 or args.connections < 1:
        parser.error("--duration, --rounds and --connections must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench."""
    args = parse_args(argv)
    return run_bench(lambda children, work_dir: run(args, children, work_dir))


if __name__ == "__main__":
    sys.exit(main())
