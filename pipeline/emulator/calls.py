"""What every generate call goes through, whichever API it came in on."""

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import Final

from aiohttp import web

from pipeline.emulator.directives import Directives
from pipeline.emulator.faults import FaultBook
from pipeline.emulator.state import Api, EmulatorConfig, EmulatorStats

CONFIG_KEY: Final = web.AppKey("emulator_config", EmulatorConfig)
STATS_KEY: Final = web.AppKey("emulator_stats", EmulatorStats)
FAULTS_KEY: Final = web.AppKey("emulator_faults", FaultBook)


def count_call(request: web.Request, api: Api, model: str | None, stream: bool) -> EmulatorStats:
    """Count the call in /stats as it arrives; return the counters."""
    stats = request.app[STATS_KEY]
    stats.count(api, model, stream)
    return stats


def with_rules(app: web.Application, api: Api, model: str, directives: Directives) -> Directives:
    """The call's directives with the fault rule that fires on it (if any) applied."""
    rule = app[FAULTS_KEY].fire(api, model)
    return directives if rule is None else rule.apply(directives)


async def apply_faults(
    request: web.Request, api: Api, model: str, directives: Directives
) -> Directives | None:
    """Add the fault rule that fires, wait the delay; None when the connection was reset."""
    directives = with_rules(request.app, api, model, directives)
    delay_ms = request.app[CONFIG_KEY].latency_ms + directives.delay_ms
    if delay_ms > 0:
        await asyncio.sleep(delay_ms / 1000)
    if directives.reset:
        request.app[STATS_KEY].errors += 1
        reset_connection(request)
        return None
    return directives


# An API's error response: (status, message, retry delay in seconds or None).
ErrorResponse = Callable[[int, str, float | None], web.Response]


async def faulted(
    request: web.Request, api: Api, model: str, directives: Directives, error: ErrorResponse
) -> Directives | web.StreamResponse:
    """The call's directives with any fault rule applied, or the response a fault decided:
    a reset connection, or an emulated error status in the API's own format."""
    applied = await apply_faults(request, api, model, directives)
    if applied is None:
        return dropped()
    if applied.status is not None:
        request.app[STATS_KEY].errors += 1
        return error(applied.status, f"Emulated error {applied.status}.", applied.retry_after_s)
    return applied


def reset_connection(request: web.Request) -> None:
    """Drop the connection with a TCP RST and no response at all."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # A zero linger time makes close() send RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def dropped() -> web.Response:
    """Return what a handler returns after reset_connection (it is never sent)."""
    return web.Response(status=499)
