"""The emulator's aiohttp application: routes, /stats, /control/faults, start and stop."""

from dataclasses import asdict, dataclass, field
from typing import Final

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from pipeline.emulator import files, gemini, gemini_batches, models, openai
from pipeline.emulator.batch_jobs import BatchBook
from pipeline.emulator.calls import CONFIG_KEY, FAULTS_KEY, STATS_KEY
from pipeline.emulator.faults import FaultBook, parse_rules
from pipeline.emulator.gemini import google_error, json_response
from pipeline.emulator.openai import openai_error
from pipeline.emulator.state import BadRequest, EmulatorConfig, EmulatorStats

_MAX_BODY: Final = 20 * 1024 * 1024


async def _healthz(request: web.Request) -> web.Response:
    """Report liveness."""
    return json_response({"status": "ok"})


async def _stats(request: web.Request) -> web.Response:
    """Report the request counters; POST zeroes them first."""
    stats = request.app[STATS_KEY]
    if request.method == "POST":
        stats.reset()
    return json_response(asdict(stats))


async def _faults(request: web.Request) -> web.Response:
    """GET lists the fault rules with counters; POST replaces them; DELETE clears them."""
    book = request.app[FAULTS_KEY]
    if request.method == "POST":
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return json_response({"error": {"message": "the body is not JSON"}}, 400)
        try:
            book.replace(parse_rules(body))
        except BadRequest as exc:
            return json_response({"error": {"message": str(exc)}}, 400)
    elif request.method == "DELETE":
        book.replace([])
    return json_response({"rules": book.listing()})


async def _model_action(request: web.Request) -> web.StreamResponse:
    """Serve `models/{model}:{action}`: batchGenerateContent here, the rest in gemini."""
    model, _, action = request.match_info["model_action"].rpartition(":")
    if model and action == "batchGenerateContent":
        return await gemini_batches.create(request, model)
    return await gemini.model_action(request)


def _is_openai_request(request: web.Request) -> bool:
    """Whether a request belongs to the OpenAI API (Gemini's v1 paths hold a ':', or the
    request comes with a Gemini key)."""
    path = request.path
    return path.startswith("/v1/") and ":" not in path and not models.gemini_client(request)


@web.middleware
async def _api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render routing errors (404, 405) in the format of the API the path belongs to."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if _is_openai_request(request):
            return openai_error(exc.status, f"{exc.reason}: {request.method} {request.path}")
        return google_error(exc.status, exc.reason)


def create_emulator_app(config: EmulatorConfig) -> web.Application:
    """Build the emulator application: Gemini and OpenAI APIs side by side."""
    # aiohttp's default 1 MB body cap is far below what Gemini accepts inline.
    app = web.Application(middlewares=[_api_errors], client_max_size=_MAX_BODY)
    app[CONFIG_KEY] = config
    app[STATS_KEY] = EmulatorStats()
    app[FAULTS_KEY] = FaultBook()
    app[gemini_batches.BATCHES_KEY] = BatchBook()
    app[files.FILES_KEY] = files.FileBook()
    version = "{version:v1(?:beta)?}"
    app.router.add_post(f"/{version}/models/{{model_action}}", _model_action)
    app.router.add_get(f"/{version}/batches", gemini_batches.list_batches)
    app.router.add_get(f"/{version}/batches/{{batch}}", gemini_batches.get_batch)
    app.router.add_delete(f"/{version}/batches/{{batch}}", gemini_batches.delete_batch)
    app.router.add_post(f"/{version}/batches/{{batch_action}}", gemini_batches.batch_action)
    app.router.add_post(f"/upload/{version}/files", files.upload)
    app.router.add_get(f"/{version}/files/{{file_action}}", files.get_file)
    app.router.add_delete(f"/{version}/files/{{file_action}}", files.delete_file)
    app.router.add_get(f"/{version}/models", models.list_models)
    app.router.add_get(f"/{version}/models/{{model}}", models.get_model)
    app.router.add_post("/v1/chat/completions", openai.chat_completions)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/stats", _stats)
    app.router.add_post("/stats/reset", _stats)
    for method in ("GET", "POST", "DELETE"):
        app.router.add_route(method, "/control/faults", _faults)
    return app


@dataclass(frozen=True)
class RunningEmulator:
    """Handle to a started emulator."""

    host: str
    port: int
    _runner: web.AppRunner = field(repr=False)

    @property
    def base_url(self) -> str:
        """Return the root URL clients pass as base_url (OpenAI clients add `/v1`)."""
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Close connections and release the port."""
        await self._runner.cleanup()


async def start_emulator(
    config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> RunningEmulator:
    """Start on a loopback port (0 = free port) in the running loop; returns the handle."""
    runner = web.AppRunner(create_emulator_app(config), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port: int = runner.addresses[0][1]
    return RunningEmulator(host, bound_port, runner)
