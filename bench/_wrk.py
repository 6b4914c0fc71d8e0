"""wrk as the fast-path bench's load tool: its Lua script, its version and its output."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from _common import BenchError, Errors, Load
from _http_load import ExpectedHeader

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
{headers}wrk.body = [==[{body}]==]

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


def write_wrk_script(
    path: Path, body: bytes, expect: ExpectedHeader, headers: Mapping[str, str] | None = None
) -> None:
    """A wrk Lua script that POSTs `body` as JSON (plus `headers`) and counts wrong responses."""
    text = body.decode()
    if "]==]" in text:
        raise ValueError("the body cannot sit inside a Lua [==[ ]==] string")
    wrong = "status ~= 200"
    if expect:
        wrong += f" or headers[{json.dumps(expect[0])}] ~= {json.dumps(expect[1])}"
    # JSON strings are valid Lua strings for the plain ASCII of header names and values.
    sent = "".join(
        f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}\n"
        for name, value in (headers or {}).items()
    )
    path.write_text(_WRK_SCRIPT.format(body=text, wrong=wrong, headers=sent))


def wrk_version(wrk: str) -> str:
    """The version wrk reports, for the header."""
    # wrk has no version flag: it prints its banner with the usage and exits 1.
    banner = subprocess.run([wrk, "--version"], capture_output=True, text=True, timeout=10)
    words = (banner.stdout or banner.stderr).split()
    return " ".join(words[:2]) or wrk
