"""A chain invocation streamed as Server-Sent Events, from LangChain's callbacks.

`step` events say when a model step calls its model (`started`) and when each step has its
value (`finished`, with the value; a map's step once per item), `delta` events carry each
model step's text as it comes, named by its step, and `done` closes with the whole result,
or `error` with what failed. The chain runs as it does unstreamed (`ainvoke`: each layer
after the one before); a callback handler hands what happens to the sender.
"""

import asyncio
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
    """Turns the run's callbacks into the stream's events, queued for the sender."""

    def __init__(self, steps: Collection[str]) -> None:
        self._steps = steps
        self._names: dict[UUID, str] = {}
        self.events: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_chat_model_start(
        self, serialized: dict[str, Any], messages: Any, *, run_id: UUID, **kwargs: Any
    ) -> None:
        step = _step_of(kwargs.get("tags"))
        if step is not None:
            self.events.put_nowait(_event("step", {"step": step, "state": "started"}))

    async def on_llm_new_token(
        self, token: str | list[str | dict[str, Any]], *, run_id: UUID, **kwargs: Any
    ) -> None:
        step = _step_of(kwargs.get("tags"))
        if isinstance(token, str) and token and step is not None:
            self.events.put_nowait(_event("delta", {"step": step, "text": token}))

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
            self.events.put_nowait(_event("step", done))

    async def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._names.pop(run_id, None)


async def stream_chain(
    request: web.Request,
    chain: Chain,
    variables: dict[str, Any],
    result: Callable[[State], ChainResult],
) -> web.StreamResponse:
    """Run `chain` on `variables`, sending its progress; `result` makes the closing body."""
    progress = _Progress(chain.spec.steps)
    config = RunnableConfig(callbacks=[progress])
    run = asyncio.create_task(chain.runnable.ainvoke(variables, config))
    stream = await open_stream(request)
    try:
        try:
            await _send_until_done(stream, progress, run)
            await stream.write(event("done", result(run.result()).model_dump_json().encode()))
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
    finally:
        run.cancel()  # a caller gone stops the chain; a finished one is not touched
    return stream


async def _send_until_done(
    stream: web.StreamResponse, progress: _Progress, run: "asyncio.Task[State]"
) -> None:
    """Send the queued events as they come until the run ends (raising what it raised)."""
    while True:
        waiter = asyncio.ensure_future(progress.events.get())
        await asyncio.wait({waiter, run}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            waiter.cancel()
        else:
            await stream.write(waiter.result())
            continue
        while not progress.events.empty():
            await stream.write(progress.events.get_nowait())
        run.result()
        return


def _step_of(tags: list[str] | None) -> str | None:
    for tag in tags or ():
        if tag.startswith(STEP_TAG):
            return tag.removeprefix(STEP_TAG)
    return None


def _error(exc: PromptbusError) -> bytes:
    return event("error", exc.body().model_dump_json().encode())


def _event(name: str, data: dict[str, Any]) -> bytes:
    return event(name, orjson.dumps(data, default=str))
