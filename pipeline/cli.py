"""The `promptbus` command: serve, emulator, schemas."""

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import version

import structlog
from aiohttp import web

from pipeline import heap
from pipeline.logs import configure_logging
from pipeline.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promptbus", description="promptbus: an event-driven LLM gateway."
    )
    parser.add_argument("--version", action="version", version=f"promptbus {version('promptbus')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the gateway (embedded default: one process)")
    serve.add_argument("--host", help="address to listen on (PROMPTBUS_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (PROMPTBUS_PORT)")
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="run no job worker in this process (PROMPTBUS_EMBEDDED_WORKER=false)",
    )
    emulator = commands.add_parser("emulator", help="run the Gemini emulator on its own")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8090)
    emulator.add_argument("--latency-ms", type=float, help="added latency per answer")
    commands.add_parser(
        "worker", help="run a job worker (bridge + Celery worker) without the HTTP ingress"
    )
    commands.add_parser("schemas", help="write the JSON Schemas to schemas/json/")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `promptbus` console script."""
    args = _parser().parse_args(argv)
    if args.command == "schemas":
        from schemas.export import write_schemas

        for path in write_schemas():
            print(path)
        return 0
    overrides: dict[str, object] = {}
    if args.command == "serve":
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        if args.no_worker:
            overrides["embedded_worker"] = False
    settings = Settings(**overrides)  # type: ignore[arg-type]
    configure_logging(settings.log_format, settings.log_level)
    if args.command == "emulator":
        latency = args.latency_ms if args.latency_ms is not None else settings.emulator_latency_ms
        return asyncio.run(_run_emulator(args.host, args.port, latency))
    if args.command == "worker":
        return asyncio.run(_work(settings))
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    from pipeline.ingress import create_app
    from pipeline.ingress.keys import SERVICES

    app = create_app(settings)
    # handler_cancellation: a caller that hangs up cancels its handler, and so its upstream
    # call unless coalesced callers still wait for it (writes are shielded in their handlers).
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    host, port = _bound(site, settings)
    heap.settle(settings.gc_gen0_threshold)
    log = structlog.get_logger("promptbus")
    log.info(
        f"promptbus listening on http://{host}:{port}; "
        f"provider {app[SERVICES].provider_description()}",
        listen=f"http://{host}:{port}",
    )
    print(
        f"try: curl -s http://{host}:{port}/v1/generate -H 'content-type: application/json' "
        """-d '{"model":"flash","prompt":"hello"}'""",
        flush=True,
    )
    for note in app[SERVICES].notes:
        log.info(note)
    try:
        await _until_signalled()
    finally:
        log.info("promptbus stopping")
        await runner.cleanup()
    return 0


async def _work(settings: Settings) -> int:
    from pipeline.services import Services
    from pipeline.worker.prefork import child_settings
    from pipeline.worker.side import WorkerSide

    services = await Services.start(settings)
    # A prefork child builds services of its own, on this process's built-in emulator if any.
    emulator = services.emulator
    forked = child_settings(settings, emulator.base_url if emulator else None)
    worker = WorkerSide(
        services, pool=settings.worker_pool, children=lambda: Services.start(forked)
    )
    try:
        await worker.start()
    except BaseException:
        await services.stop()
        raise
    heap.settle(settings.gc_gen0_threshold)
    log = structlog.get_logger("promptbus")
    log.info(
        f"promptbus worker consuming {settings.broker_url.split('@')[-1]}; "
        f"provider {services.provider_description()}",
        concurrency=settings.worker_concurrency,
        pool=settings.worker_pool,
    )
    try:
        await _until_signalled()
    finally:
        log.info("promptbus worker stopping")
        await worker.stop()
        await services.stop()
    return 0


async def _run_emulator(host: str, port: int, latency_ms: float) -> int:
    from pipeline.emulator import EmulatorConfig, start_emulator

    emulator = await start_emulator(EmulatorConfig(latency_ms=latency_ms), host=host, port=port)
    structlog.get_logger("promptbus.emulator").info(
        f"Gemini emulator listening on {emulator.base_url}", latency_ms=latency_ms
    )
    try:
        await _until_signalled()
    finally:
        await emulator.stop()
    return 0


def _bound(site: web.TCPSite, settings: Settings) -> tuple[str, int]:
    server = site._server  # aiohttp keeps the bound sockets here; needed for port 0
    sockets = getattr(server, "sockets", None) or []
    if sockets:
        address = sockets[0].getsockname()
        return str(address[0]), int(address[1])
    return settings.host, settings.port


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


if __name__ == "__main__":
    sys.exit(main())
