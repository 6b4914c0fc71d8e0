"""Memory "summary": turns leaving a session's window are folded into its running summary.

Started once a turn is kept, in a task of its own that holds the session (so a turn's
answer never waits on its summary, and the next turn waits for the fold, or is sent before
it with a wider window). The summary is one more model call on promptbus's path for the
session's tenant (cached, accounted in the ledger as surface `session`). If it fails, the
turns stay as they are, to be folded after a later turn.
"""

import asyncio
from typing import Final

import structlog
from aiohttp import web

from pipeline.errors import PromptbusError
from pipeline.ingress.keys import SEND, SERVICES, SETTINGS
from pipeline.ingress.middleware import REQUEST_ID_KEY
from pipeline.ingress.principal import principal_of
from pipeline.ingress.recorded import recorded
from pipeline.sessions import summary_request
from schemas import GenerateResponse

log = structlog.get_logger("promptbus.sessions")

# The folds running, held so that none is collected mid-way (one per turn at most).
FOLDS: Final = web.AppKey("session_folds", set[asyncio.Task[None]])


def start_fold(request: web.Request, tenant: str, session_id: str) -> None:
    """Fold the session's older turns in the background, once it is free."""
    folds = request.app[FOLDS]
    task = asyncio.create_task(_fold_held(request, tenant, session_id))
    folds.add(task)
    task.add_done_callback(folds.discard)


async def _fold_held(request: web.Request, tenant: str, session_id: str) -> None:
    try:
        async with request.app[SERVICES].sessions.turn(tenant, session_id):
            await fold_older(request, tenant, session_id)
    except PromptbusError as exc:  # the store away, or the session busy: a later turn folds
        log.warning("session summary skipped", session_id=session_id, error=exc.type)


async def fold_older(request: web.Request, tenant: str, session_id: str) -> None:
    """Fold the session's messages beyond its window into its summary, if there are any."""
    settings = request.app[SETTINGS]
    sessions = request.app[SERVICES].sessions
    window = 2 * settings.session_max_turns
    history = await sessions.history(tenant, session_id)
    if len(history) <= window:
        return
    older = history[: len(history) - window]
    call = summary_request(
        settings.session_summary_model, await sessions.summary(tenant, session_id), older
    )
    principal = principal_of(request)
    try:
        async with recorded(request, call, surface="session") as answered:
            answer = await request.app[SEND].sync_path.answer(
                call,
                request_id=request[REQUEST_ID_KEY],
                tenant=tenant,
                max_age_s=None,
                key_id=principal.key_id,
            )
            response = answer.response or GenerateResponse.model_validate_json(answer.body)
            answered(response)
    except PromptbusError as exc:
        log.warning("session summary failed", session_id=session_id, error=exc.type)
        return
    if response.text:
        await sessions.fold(tenant, session_id, len(older), response.text)
