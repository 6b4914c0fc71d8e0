"""Gemini's Batch API: `POST /{version}/models/{model}:batchGenerateContent` and `batches/*`.

Requests come inline (answered in `output.inlinedResponses`, with their metadata) or in
an uploaded JSON Lines file of `{"key", "request"}` lines (answered in a generated file,
`output.responsesFile`, one `{"key", "response" | "error"}` line each). Each request is
answered as `generateContent` answers it (its directives and the fault rules included) and
counts in /stats as one call when the job runs. A request with `[[emulator:batch=failed]]`
(or `expired`) ends its whole job so, unanswered. A request that fails (a `status=`
directive, a fault rule, a request the API would reject) gets a `google.rpc.Status` error
in its place; the others are answered.
"""

from typing import Any, Final

import orjson
from aiohttp import web

from pipeline.emulator.answers import read_directives
from pipeline.emulator.batch_jobs import BatchBook, BatchJob, BatchState
from pipeline.emulator.calls import CONFIG_KEY, STATS_KEY, with_rules
from pipeline.emulator.files import FILES_KEY, FileBook
from pipeline.emulator.gemini import answer_call, google_error, json_response
from pipeline.emulator.gemini_requests import read_body, read_prompt
from pipeline.emulator.state import BadRequest, Json

BATCHES_KEY: Final = web.AppKey("emulator_batches", BatchBook)
# Inline requests in one batch; the body cap (20 MB, as Gemini's) bounds them too.
MAX_REQUESTS: Final = 10_000
_PAGE_SIZE: Final = 50
_MAX_PAGE_SIZE: Final = 1_000


def _status(code: int, message: str) -> Json:
    """A google.rpc.Status, as a batch's failed request carries it."""
    return {"error": {"code": code, "message": message}}


class AnswerItem:
    """Answers one inline request of a job the way generateContent would."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def __call__(self, model: str, request: Json) -> Json:
        """`{"response": GenerateContentResponse}` or `{"error": Status}`."""
        stats = self._app[STATS_KEY]
        stats.count("gemini", model, False)
        try:
            prompt = read_prompt(model, request)
            directives = with_rules(self._app, "gemini", model, read_directives(prompt))
            if directives.status is not None:
                stats.errors += 1
                return _status(directives.status, f"Emulated error {directives.status}.")
            if directives.reset:
                # A job has no connection of the caller's to drop: the request fails instead.
                stats.errors += 1
                return _status(500, "Emulated connection reset.")
            reply, _ = answer_call(prompt, directives)
        except BadRequest as exc:
            stats.errors += 1
            return _status(400, str(exc))
        return {"response": reply}


def _file_requests(book: FileBook, name: Any) -> list[Json]:
    """The keyed requests of an uploaded JSON Lines file: `{"key", "request"}` a line."""
    stored = book.get(name) if isinstance(name, str) else None
    if stored is None or not stored.done:
        raise BadRequest(f"* InputConfig.file_name: file {name!r} not found")
    items = []
    for number, line in enumerate(bytes(stored.data).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"* {name} line {number}: not JSON: {exc}") from exc
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise BadRequest(f"* {name} line {number}: a line needs a string key")
        items.append(item)
    return items


def _requests(body: Json, files: FileBook) -> tuple[str, list[Json], bool]:
    """The display name and the requests of a batchGenerateContent body, and whether they
    came in a file."""
    batch = body.get("batch")
    if not isinstance(batch, dict):
        raise BadRequest("* BatchGenerateContentRequest.batch: batch is not specified")
    config = batch.get("inputConfig")
    if not isinstance(config, dict):
        raise BadRequest("* GenerateContentBatch.input_config: input_config is not specified")
    from_file = "fileName" in config
    items: Any
    if from_file:
        items = _file_requests(files, config["fileName"])
    else:
        holder = config.get("requests")
        items = holder.get("requests") if isinstance(holder, dict) else None
    if not isinstance(items, list) or not items:
        raise BadRequest("* InputConfig.requests: requests is not specified")
    if len(items) > MAX_REQUESTS:
        raise BadRequest(f"* InputConfig.requests: at most {MAX_REQUESTS} requests")
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
            raise BadRequest(f"* InlinedRequests.requests[{index}].request: not specified")
    name = batch.get("displayName")
    return (name if isinstance(name, str) else ""), items, from_file


_ENDS: Final = {"failed": BatchState.FAILED, "expired": BatchState.EXPIRED}


def _job_fault(model: str, items: list[Json]) -> BatchState | None:
    """How the job ends when one of its requests says so (`batch=failed|expired`)."""
    for item in items:
        try:
            end = read_directives(read_prompt(model, item["request"])).batch
        except BadRequest:
            continue  # that request fails on its own when the job runs
        if end is not None:
            return _ENDS[end]
    return None


async def create(request: web.Request, model: str) -> web.Response:
    """Start a batch job of inline requests or of a file's; answer its Operation."""
    try:
        body = await read_body(request)
        display_name, items, from_file = _requests(body, request.app[FILES_KEY])
        book = request.app[BATCHES_KEY]
        fault = _job_fault(model, items)
        job = book.create(model, display_name, items, from_file=from_file, fault=fault)
    except BadRequest as exc:
        return google_error(400, str(exc))
    return json_response(job.operation())


def _advance(app: web.Application, job: BatchJob) -> None:
    """Move the job on to where its time says."""
    files = app[FILES_KEY]
    step_s = app[CONFIG_KEY].batch_step_ms / 1000
    job.advance(step_s, AnswerItem(app), lambda data: files.generated(data).name)


def _job(request: web.Request, name: str) -> BatchJob | None:
    """The named job, moved on to where its time says."""
    job = request.app[BATCHES_KEY].get(f"batches/{name}")
    if job is not None:
        _advance(request.app, job)
    return job


def _not_found(name: str) -> web.Response:
    return google_error(404, f"Batch batches/{name} not found.")


async def get_batch(request: web.Request) -> web.Response:
    """`GET batches/{id}`: the job's Operation."""
    name = request.match_info["batch"]
    job = _job(request, name)
    return _not_found(name) if job is None else json_response(job.operation())


async def batch_action(request: web.Request) -> web.Response:
    """`POST batches/{id}:cancel`: cancel a job that has not finished."""
    name, _, action = request.match_info["batch_action"].rpartition(":")
    if action != "cancel" or not name:
        return google_error(404, f"Unknown method: {request.match_info['batch_action']}")
    job = _job(request, name)
    if job is None:
        return _not_found(name)
    job.cancel()
    return json_response({})


async def delete_batch(request: web.Request) -> web.Response:
    """`DELETE batches/{id}`: forget the job."""
    name = request.match_info["batch"]
    if not request.app[BATCHES_KEY].delete(f"batches/{name}"):
        return _not_found(name)
    return json_response({})


def _whole(value: str, name: str, low: int, high: int) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise BadRequest(f"* {name}: expected a whole number from {low} to {high}")
    return int(value)


async def list_batches(request: web.Request) -> web.Response:
    """`GET batches?pageSize=&pageToken=`: the jobs, oldest first, a page at a time."""
    try:
        size = _whole(request.query.get("pageSize", str(_PAGE_SIZE)), "page_size", 1, 10**9)
        start = _whole(request.query.get("pageToken", "0") or "0", "page_token", 0, 10**9)
    except BadRequest as exc:
        return google_error(400, str(exc))
    book = request.app[BATCHES_KEY]
    jobs, after = book.page(min(size, _MAX_PAGE_SIZE), start)
    for job in jobs:
        _advance(request.app, job)
    body: Json = {"operations": [job.operation() for job in jobs]}
    if after is not None:
        body["nextPageToken"] = str(after)
    return json_response(body)
