"""`promptbus serve --processes N`: N serve children on one port, kept running, stopped together."""

import asyncio
import signal
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from pipeline import metrics_files
from pipeline.processes.restarts import RestartBudget
from pipeline.processes.spawn import Child, child_argv, child_env, reserve_port, spawn
from pipeline.settings import Settings

# A child first drains its in-flight requests for up to 60 s (aiohttp's shutdown timeout, as
# a lone `serve` does), then stops its runtime: one still running after this long is killed.
STOP_TIMEOUT_S = 70.0
# A child that does not listen within this long is taken for hung, killed and restarted.
READY_TIMEOUT_S = 120.0

log = structlog.get_logger("promptbus.supervisor")


class Supervisor:
    """Starts the children, restarts those that die, and stops them all on SIGTERM or SIGINT."""

    def __init__(
        self, settings: Settings, env: Mapping[str, str], on_listening: Callable[[str], None]
    ) -> None:
        self._settings = settings
        self._env = child_env(env)
        self._on_listening = on_listening
        # Without a shared job store a child's worker would run jobs no other child can read.
        self._worker = settings.embedded_worker and settings.shares_state
        self._children: dict[int, Child] = {}
        self._up: set[int] = set()
        self._url = ""
        self._exit_code = 0
        self._stop = asyncio.Event()
        self._hurry = asyncio.Event()

    async def run(self) -> int:
        """Supervise until signalled (0), or until a child cannot be kept running (1)."""
        host, count = self._settings.host, self._settings.processes
        try:
            reservation = reserve_port(host, self._settings.port)
        except OSError as exc:
            log.error(f"promptbus cannot listen on {host}:{self._settings.port}: {exc}")
            return 1
        with reservation:
            port = int(reservation.getsockname()[1])
            self._url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
            self._announce()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._signalled)
            keepers = [asyncio.create_task(self._keep(i, port)) for i in range(1, count + 1)]
            await self._stop.wait()
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)
            await self._stop_children()
        log.info("promptbus supervisor stopped", exit_code=self._exit_code)
        return self._exit_code

    def _announce(self) -> None:
        settings, count = self._settings, self._settings.processes
        if settings.redis_url is not None:
            redis = settings.redis_url.split("@")[-1]
            shared = ["port", "l2_cache", "coalescing", "rate_limits", "jobs", "webhooks"]
            sharing = (
                f"shared through Redis ({redis}, prefix {settings.redis_prefix}): the L2 "
                "cache, coalescing, rate limits, the job store and webhook endpoints"
            )
        else:
            shared, sharing = ["port"], "nothing shared but the port"
        bus = settings.broker_url.split("@")[-1]
        if bus.startswith("memory://"):
            bus = "memory:// (one bus per process)"
        if settings.uses_emulator:
            bus += "; each process starts its own built-in emulator (its line says why)"
        log.info(
            f"promptbus supervisor: {count} processes on {self._url} (SO_REUSEPORT); "
            f"{sharing}; bus {bus}",
            listen=self._url,
            processes=count,
            shared=shared,
            worker=self._worker,
        )
        if not settings.shares_state:
            log.warning(
                f"PROMPTBUS_REDIS_URL is unset: each of the {count} processes has its own "
                "cache, coalescing, rate limits and circuit breakers, and async jobs and "
                "webhook endpoints need PROMPTBUS_REDIS_URL: /v1/jobs and /v1/webhooks answer "
                "503 jobs_unavailable and no process runs a job worker"
            )

    async def _keep(self, index: int, port: int) -> None:
        """Run child `index`, starting it again whenever it dies, within its restart budget."""
        settings = self._settings
        argv = child_argv(settings.host, port, settings.processes, index, worker=self._worker)
        budget = RestartBudget()
        try:
            while True:
                child = await spawn(argv, self._env, index)
                self._children[index] = child
                if await self._listens(child):
                    self._came_up(child)
                code = await child.process.wait()
                child.ready.cancel()
                self._forget(child)
                ended = _ended(code)
                if index not in self._up:
                    log.error(f"promptbus process {index} {ended} before it listened; stopping")
                    return self._fail()
                pause = budget.next_pause(time.monotonic())
                if pause is None:
                    log.error(
                        f"promptbus process {index} {ended}: {budget.max_restarts} restarts "
                        f"within {budget.window_s:g} s already; stopping every process"
                    )
                    return self._fail()
                log.warning(
                    f"promptbus process {index} (pid {child.pid}) {ended}; "
                    f"restarting it in {pause:g} s",
                    process=index,
                    pid=child.pid,
                    exit_code=code,
                )
                await asyncio.sleep(pause)
        except Exception:
            log.exception(f"supervising promptbus process {index} failed; stopping")
            self._fail()

    async def _listens(self, child: Child) -> bool:
        """Whether the child says it listens before it exits or the bound passes."""
        try:
            return await asyncio.wait_for(child.ready, READY_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                f"promptbus process {child.index} (pid {child.pid}) did not listen within "
                f"{READY_TIMEOUT_S:g} s; killing it"
            )
            child.signal(signal.SIGKILL)
            return False

    def _forget(self, child: Child) -> None:
        """Forget an exited child's live gauges (its counters still count in the total)."""
        metrics_dir = self._settings.metrics_multiprocess_dir
        if metrics_dir is not None:
            metrics_files.mark_dead(child.pid, metrics_dir)

    def _came_up(self, child: Child) -> None:
        if child.index in self._up:
            log.info(
                f"promptbus process {child.index} restarted (pid {child.pid})",
                process=child.index,
                pid=child.pid,
            )
            return
        self._up.add(child.index)
        if len(self._up) == self._settings.processes:
            pids = [c.pid for _, c in sorted(self._children.items())]
            log.info(
                f"promptbus: all {len(pids)} processes listening on {self._url}",
                listen=self._url,
                pids=pids,
            )
            self._on_listening(self._url)

    def _fail(self) -> None:
        self._exit_code = 1
        self._stop.set()

    def _signalled(self) -> None:
        if self._stop.is_set():
            log.warning("promptbus supervisor signalled again: killing every process now")
            self._hurry.set()
            return
        log.info(f"promptbus supervisor stopping {self._settings.processes} processes")
        self._stop.set()

    async def _stop_children(self) -> None:
        """SIGTERM to every child, SIGKILL to those still running after the bound."""
        children = [child for child in self._children.values() if child.running]
        for child in children:
            child.signal(signal.SIGTERM)
        exited = asyncio.gather(*(c.process.wait() for c in children))
        hurry = asyncio.ensure_future(self._hurry.wait())
        either: list[asyncio.Future[Any]] = [exited, hurry]
        await asyncio.wait(either, timeout=STOP_TIMEOUT_S, return_when="FIRST_COMPLETED")
        hurry.cancel()
        stragglers = [child for child in children if child.running]
        if stragglers:
            log.warning(
                f"promptbus processes still running; killing them: "
                f"{', '.join(str(c.pid) for c in stragglers)}"
            )
            for child in stragglers:
                child.signal(signal.SIGKILL)
        await exited
        for child in children:
            child.ready.cancel()


def _ended(code: int) -> str:
    """How a child ended, in words: its exit code, or the signal that killed it."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
