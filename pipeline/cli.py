"""The `promptbus` command: serve, worker, emulator, schemas, db, tenants, keys."""

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from pipeline import heap, metrics_files
from pipeline.logs import configure_logging
from pipeline.processes import ChildRole, Supervisor, SupervisorGone
from pipeline.settings import Settings
from pipeline.tenancy import cli as tenancy_cli

if TYPE_CHECKING:
    from pipeline.metrics.exposition import MetricsServer
    from pipeline.services import Services

# The command-line flag of each setting that has one, for error messages.
_FLAGS = {
    "host": "--host",
    "port": "--port",
    "processes": "--processes",
    "worker_concurrency": "--concurrency",
    "worker_pool": "--pool",
    "metrics_port": "--metrics-port",
}


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
    serve.add_argument(
        "--processes",
        metavar="N|auto",
        help="serving processes sharing the port (PROMPTBUS_PROCESSES; default 1, auto = "
        "one per core); more than 1 starts a supervisor",
    )
    # A supervised child's place, set by the supervisor only.
    serve.add_argument("--child", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    emulator = commands.add_parser("emulator", help="run the Gemini emulator on its own")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8090)
    emulator.add_argument("--latency-ms", type=float, help="added latency per answer")
    worker = commands.add_parser(
        "worker", help="run a job worker (bridge + Celery worker) without the HTTP ingress"
    )
    worker.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="tasks at once: threads, or child processes with prefork "
        "(PROMPTBUS_WORKER_CONCURRENCY; default 16)",
    )
    worker.add_argument(
        "--pool",
        choices=["threads", "prefork"],
        help="threads, or prefork for CPU-bound workers (PROMPTBUS_WORKER_POOL; default threads)",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        metavar="N",
        help="serve the worker's Prometheus metrics on http://HOST:N/metrics, prefork "
        "children's included (PROMPTBUS_METRICS_PORT; default: not served)",
    )
    commands.add_parser("schemas", help="write the JSON Schemas to schemas/json/")
    db = commands.add_parser("db", help="the database: tenants, keys, budgets, usage")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_commands.add_parser(
        "upgrade", help="apply the schema migrations (every process also does at start-up)"
    )
    tenancy_cli.add_commands(commands)
    return parser


def settings_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings the command line gives; they win over the environment."""
    if args.command == "serve":
        given = {"host": args.host, "port": args.port, "processes": args.processes}
        if args.no_worker:
            given["embedded_worker"] = False
    elif args.command == "worker":
        given = {
            "worker_concurrency": args.concurrency,
            "worker_pool": args.pool,
            "metrics_port": args.metrics_port,
        }
    else:
        given = {}
    return {name: value for name, value in given.items() if value is not None}


def load_settings(overrides: dict[str, object]) -> Settings | None:
    """The settings, or None after saying on stderr which ones are invalid and why."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "settings"
            where = " or ".join(filter(None, (_FLAGS.get(name), f"PROMPTBUS_{name.upper()}")))
            message = error["msg"].removeprefix("Value error, ")
            secret = "secret" in name or "key" in name
            got = "" if secret else f" (got {error.get('input')!r})"
            print(f"promptbus: invalid {where}: {message}{got}", file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `promptbus` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "schemas":
        from schemas.export import write_schemas

        for path in write_schemas():
            print(path)
        return 0
    role = _child_role(parser, args)
    settings = load_settings(settings_overrides(args))
    if settings is None:
        return 2
    configure_logging(settings.log_format, settings.log_level)
    if args.command == "emulator":
        latency = args.latency_ms if args.latency_ms is not None else settings.emulator_latency_ms
        return asyncio.run(_run_emulator(args.host, args.port, latency))
    if args.command == "worker":
        return _exporting_together(settings, settings.worker_pool == "prefork", _work)
    if args.command == "db":
        return asyncio.run(_db_upgrade(settings))
    if args.command in ("tenants", "keys"):
        return tenancy_cli.run(args, settings)
    if role is None:
        # Before anything binds (a supervisor's children too): the parent checks for them.
        refused = asyncio.run(_refusal(settings))
        if refused is not None:
            print(f"promptbus: {refused}", file=sys.stderr)
            return 2
    if role is not None:
        try:
            role.die_with_parent()
        except SupervisorGone:
            return 1
        return asyncio.run(_serve(settings, role))
    if settings.processes > 1:
        return _exporting_together(settings, True, _supervise)
    return asyncio.run(_serve(settings))


def _exporting_together(
    settings: Settings, processes: bool, run: Callable[[Settings], Coroutine[Any, Any, int]]
) -> int:
    """Run `run`; when it has processes that export their metrics together, on a fresh
    multiprocess directory that they (children included) write their metrics to."""
    if not (processes and settings.metrics):
        return asyncio.run(run(settings))
    files = metrics_files.prepare(os.environ)
    try:
        return asyncio.run(
            run(settings.model_copy(update={"metrics_multiprocess_dir": files.path}))
        )
    finally:
        files.remove()


async def _supervise(settings: Settings) -> int:
    return await Supervisor(settings, os.environ, _print_try).run()


def _child_role(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ChildRole | None:
    if getattr(args, "child", None) is None:
        return None
    if args.parent_pid is None or args.ready_fd is None:
        parser.error("--child needs --parent-pid and --ready-fd")
    return ChildRole(index=args.child, parent_pid=args.parent_pid, ready_fd=args.ready_fd)


def _print_try(url: str) -> None:
    print(
        f"try: curl -s {url}/v1/generate -H 'content-type: application/json' "
        """-d '{"model":"flash","prompt":"hello"}'""",
        flush=True,
    )


async def _serve(settings: Settings, role: ChildRole | None = None) -> int:
    from pipeline.ingress import create_app
    from pipeline.ingress.connections import IngressRunner
    from pipeline.ingress.keys import SERVICES
    from pipeline.tenancy import describe as describe_auth

    app = create_app(settings)
    runner = IngressRunner(app, settings)
    await runner.setup()
    # A supervised child shares its port with its siblings; the kernel spreads connections.
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=True if role else None)
    await site.start()
    host, port = _bound(site, settings)
    heap.settle(settings.gc_gen0_threshold)
    log = structlog.get_logger("promptbus")
    provider = app[SERVICES].provider_description()
    tenancy = app[SERVICES].tenancy
    auth = describe_auth(settings, keys_exist=await tenancy.directory.keys_exist())
    if role is None:
        log.info(
            f"promptbus listening on http://{host}:{port}; provider {provider}; {auth}",
            listen=f"http://{host}:{port}",
        )
        _print_try(f"http://{host}:{port}")
    else:
        log.info(
            f"promptbus process {role.index}/{settings.processes} (pid {os.getpid()}) "
            f"listening on http://{host}:{port}; provider {provider}",
            listen=f"http://{host}:{port}",
            process=role.index,
            pid=os.getpid(),
        )
    for note in app[SERVICES].notes:
        log.info(note)
    stop = _signalled()
    if role is not None:
        # After the handlers: a SIGTERM the supervisor sends at once must find them.
        role.report_ready()
    try:
        await stop.wait()
    finally:
        log.info("promptbus stopping")
        await runner.cleanup()
    return 0


async def _refusal(settings: Settings) -> str | None:
    """Why `serve` must not start (beyond loopback with no keys), or None."""
    from pipeline.db import create_engine, upgrade
    from pipeline.tenancy import TenantStore, refusal

    if refusal(settings, keys_exist=False) is None:
        return None  # nothing to look up: these settings serve whatever the keys
    engine = create_engine(settings)
    try:
        await upgrade(engine)
        keys_exist = await TenantStore(engine).any_keys()
    finally:
        await engine.dispose()
    return refusal(settings, keys_exist=keys_exist)


async def _db_upgrade(settings: Settings) -> int:
    from pipeline.db import create_engine, database_url, upgrade

    engine = create_engine(settings)
    try:
        revision = await upgrade(engine)
    finally:
        await engine.dispose()
    where = database_url(settings).render_as_string(hide_password=True)
    print(f"promptbus: database {where} is at revision {revision}")
    return 0


async def _work(settings: Settings) -> int:
    from pipeline.services import Services
    from pipeline.worker.prefork import child_settings
    from pipeline.worker.side import WorkerSide

    services = await Services.start(settings, role="worker")
    # A prefork child builds services of its own, on this process's built-in emulator if any.
    emulator = services.emulator
    forked = child_settings(settings, emulator.base_url if emulator else None)
    worker = WorkerSide(
        services, pool=settings.worker_pool, children=lambda: Services.start(forked, role="worker")
    )
    metrics = _metrics_server(settings, services)
    try:
        await worker.start()
    except BaseException:
        await services.stop()
        raise
    if metrics is not None:
        try:
            await metrics.start()
        except BaseException:
            await worker.stop()
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
    if metrics is not None:
        log.info(f"promptbus worker metrics on {metrics.url}", metrics=metrics.url)
    try:
        await _until_signalled()
    finally:
        log.info("promptbus worker stopping")
        if metrics is not None:
            await metrics.stop()
        await worker.stop()
        await services.stop()
    return 0


def _metrics_server(settings: Settings, services: "Services") -> "MetricsServer | None":
    """The worker's /metrics server when --metrics-port asks for one (and metrics are on)."""
    if settings.metrics_port is None or not services.metrics.enabled:
        return None
    from pipeline.bus.queue_depths import QueueDepths
    from pipeline.metrics.exposition import MetricsServer, metrics_handler

    depths = QueueDepths(services.celery, services.topology, services.metrics)
    handler = metrics_handler(
        services.metrics,
        settings.metrics_multiprocess_dir,
        lambda: asyncio.to_thread(depths.sample),
    )
    return MetricsServer(handler, host=settings.host, port=settings.metrics_port)


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


def _signalled() -> asyncio.Event:
    """An event set on SIGINT or SIGTERM, from now on."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _until_signalled() -> None:
    await _signalled().wait()


if __name__ == "__main__":
    sys.exit(main())
