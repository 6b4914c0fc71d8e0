"""A chain invocation streamed as Server-Sent Events, from LangChain's callbacks.

`step` events say when a model step calls its model (`started`) and when each step has its
value (`finished`, with the value; a map's step once per item), `delta` events carry each
model step's text as it comes, named by its step, and `done` closes with the whole result,
or `error` with what failed. The chain runs as it does unstreamed (`ainvoke`: each layer
after the one before); a callback handler writes each event as it happens, so a slow reader
slows the chain rather than piling events up, and a reader gone stops it.
"""

from collections.abc import Callable, Collection
from typing import Any
from uuid import UUID

import orjson
import structlog
from aiohttp import web
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.runnables import RunnableConfig

from pipeline.chains import Chain
from pipeline.chains.build import State
from pipeline.chains.custom import INPUT_ERRORS, refusal
from pipeline.chains.spec import STEP_TAG
from pipeline.errors import PromptbusError
from pipeline.ingress.sse import event, open_stream
from schemas.chains import ChainResult

log = structlog.get_logger("promptbus.chains")


class _Progress(AsyncCallbackHandler):
    """Writes the run's callbacks to the stream as its events."""

    # A write that fails (the reader went away) ends the run instead of being logged.
    raise_error = True

    def __init__(self, stream: web.StreamResponse, steps: Collection[str]) -> None:
        self._stream = stream
        self._steps = steps
        self._names: dict[UUID, str] = {}

    async def on_chat_model_start(
        self, serialized: dict[str, Any], messages: Any, *, run_id: UUID, **kwargs: Any
    ) -> None:
        step = _step_of(kwargs.get("tags"))
        if step is not None:
            await self._stream.write(_event("step", {"step": step, "state": "started"}))

    async def on_llm_new_token(
        self, token: str | list[str | dict[str, Any]], *, run_id: UUID, **kwargs: Any
    ) -> None:
        step = _step_of(kwargs.get("tags"))
        if isinstance(token, str) and token and step is not None:
            await self._stream.write(_event("delta", {"step": step, "text": token}))

    async def on_chain_start(
        self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID, **kwargs: Any
    ) -> None:
        name = kwargs.get("name")
        if isinstance(name, str) and name in self._steps:
            self._names[run_id] = name

    async def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        name = self._names.pop(run_id, None)
        if name is not None:
            done = {"step": name, "state": "finished", "output": outputs}
            await self._stream.write(_event("step", done))

    async def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._names.pop(run_id, None)


async def stream_chain(
    request: web.Request,
    chain: Chain,
    variables: dict[str, Any],
    result: Callable[[State], ChainResult],
) -> web.StreamResponse:
    """Run `chain` on `variables`, sending its progress; `result` makes the closing body."""
    stream = await open_stream(request)
    config = RunnableConfig(callbacks=[_Progress(stream, chain.spec.steps)])
    try:
        try:
            state = await chain.runnable.ainvoke(variables, config)
            await stream.write(event("done", result(state).model_dump_json().encode()))
        except INPUT_ERRORS as exc:
            if not chain.spec.custom:
                raise
            await stream.write(_error(refusal(chain.spec.id, exc)))
        except PromptbusError as exc:
            log.info("chain failed", chain=chain.spec.id, error=exc.type, message=exc.message)
            await stream.write(_error(exc))
        await stream.write_eof()
    except ConnectionError:
        log.info("chain stream caller went away", chain=chain.spec.id)
    return stream


def _step_of(tags: list[str] | None) -> str | None:
    for tag in tags or ():
        if tag.startswith(STEP_TAG):
            return tag.removeprefix(STEP_TAG)
    return None


def _error(exc: PromptbusError) -> bytes:
    return event("error", exc.body().model_dump_json().encode())


def _event(name: str, data: dict[str, Any]) -> bytes:
    return event(name, orjson.dumps(data, default=str))
