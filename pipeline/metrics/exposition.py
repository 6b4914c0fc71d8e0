"""`GET /metrics`: the Prometheus text (or OpenMetrics, by `Accept`) of this process, or of
every process of the run in multiprocess mode; and the small server a worker runs it on.

prometheus_client's own aiohttp handler does the content negotiation and compression. Its
content type carries a charset, which aiohttp's `content_type=` refuses: it goes in the
headers, as that handler does.
"""

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.multiprocess import MultiProcessCollector

from pipeline.errors import NotFound
from pipeline.metrics.recorder import Metrics
from pipeline.metrics_files import forget_dead

log = structlog.get_logger("promptbus.metrics")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Work done at scrape time (sampling queue depths), bounded so a stuck broker cannot hold
# the scrape: the previous sample is shown instead.
Sampler = Callable[[], Awaitable[None]]
SAMPLE_TIMEOUT_S: Final = 2.0


def metrics_handler(
    metrics: Metrics, multiprocess_dir: Path | None, sample: Sampler | None = None
) -> Handler:
    """The `/metrics` handler: this process's registry, or every process's files."""
    if not metrics.enabled or metrics.registry is None:

        async def off(request: web.Request) -> web.StreamResponse:
            raise NotFound("metrics are off (PROMPTBUS_METRICS=false)")

        return off
    if multiprocess_dir is None:
        registry = metrics.registry
    else:
        # The collector reads every process's files at each scrape.
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
    render = make_aiohttp_handler(registry=registry)

    async def get_metrics(request: web.Request) -> web.StreamResponse:
        if sample is not None:
            try:
                await asyncio.wait_for(sample(), SAMPLE_TIMEOUT_S)
            except Exception as exc:
                log.info("metrics sample skipped", error=f"{type(exc).__name__}: {exc}")
        if multiprocess_dir is not None:
            await asyncio.to_thread(forget_dead, multiprocess_dir)
        return await render(request)

    return get_metrics


class MetricsServer:
    """`/metrics` on a port of its own, for a process with no ingress (`promptbus worker`)."""

    def __init__(self, handler: Handler, *, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get("/metrics", handler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._host = host
        self._port = port
        self.url = ""

    async def start(self) -> None:
        """Listen; `url` then says where (port 0 picks a free one)."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        host, port = self._host, self._port
        for address in self._runner.addresses:
            host, port = str(address[0]), int(address[1])
            break
        self.url = f"http://{host}:{port}/metrics"

    async def stop(self) -> None:
        """Stop listening."""
        await self._runner.cleanup()
