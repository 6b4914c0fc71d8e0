"""wrk as a miss load: a fresh prompt per request, every request answered, every one counted.

wrk stops at `-d` with requests still in flight, and counts only the answered ones, so the
upstream calls of a plain run exceed its request count by whatever was cut off. This script
stops sending at the deadline (`delay()` then returns an hour) and lets `-d` run a drain
longer, so every request sent is answered before wrk exits; it counts what it sent and what
came back, and times the run itself with a monotonic clock (LuaJIT's ffi).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from _common import BenchError, Load
from _wrk import parse_wrk

_SCRIPT: Final = """\
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} pb_timespec;
int clock_gettime(int clk_id, pb_timespec *tp);
]]
local clock = ffi.new("pb_timespec")
local function now()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

local threads = {{}}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  -- wrk calls request() once on thread 0 before the run, to check it: not a request sent.
  sent = (id == 0) and -1 or 0
  ok, wrong, first, last = 0, 0, 0, 0
  deadline = now() + {duration_s}
end

function delay()
  if now() < deadline then return 0 end
  return 3600000  -- past the deadline: send no more, answer what is in flight
end

function request()
  sent = sent + 1
  if sent == 1 then first = now() end
  local body = string.format('{{"model":"flash","prompt":"{label} %d %d"}}', id, sent)
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, body)
end

function response(status, headers, body)
  last = now()
  if status == 200 and headers["X-Cache"] == "MISS" then ok = ok + 1 else wrong = wrong + 1 end
end

function done(summary, latency, requests)
  local s, o, w, f, l = 0, 0, 0, math.huge, 0
  for _, t in ipairs(threads) do
    s, o, w = s + t:get("sent"), o + t:get("ok"), w + t:get("wrong")
    if t:get("first") > 0 then f = math.min(f, t:get("first")) end
    l = math.max(l, t:get("last"))
  end
  io.write(string.format("Wrong responses: %d\\n", w))
  io.write(string.format("misses: sent %d ok %d wrong %d window %.6f\\n", s, o, w, l - f))
end
"""

_MISSES: Final = re.compile(r"^misses: sent (\d+) ok (\d+) wrong (\d+) window ([\d.]+)$", re.M)


@dataclass(frozen=True)
class MissRun:
    """One wrk miss run: what it sent, and the load it measured over its own window."""

    sent: int
    window_s: float
    load: Load


def write_script(path: Path, label: str, duration_s: float) -> None:
    """The Lua script for one run: unique prompts starting with `label`, for `duration_s`."""
    if not re.fullmatch(r"[\w .:-]+", label):
        raise ValueError(f"label {label!r} must stay plain inside a JSON string")
    path.write_text(_SCRIPT.format(label=label, duration_s=duration_s))


def parse(output: str) -> MissRun:
    """The run's counts and latency from wrk's output; unanswered requests count as errors."""
    match = _MISSES.search(output)
    if match is None:
        raise BenchError(f"no miss counts in the wrk output:\n{output}")
    sent, ok, wrong, window = int(match[1]), int(match[2]), int(match[3]), float(match[4])
    load = parse_wrk(output)
    load.errors.add(f"{sent - ok - wrong} requests sent but never answered", sent - ok - wrong)
    rate = ok / window if window > 0 else 0.0
    return MissRun(sent, window, Load(ok, rate, load.p50_ms, load.p99_ms, load.errors))
