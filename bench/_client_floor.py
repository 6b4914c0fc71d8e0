"""The floor of a miss: LangChain's Gemini client alone, run in a process of its own."""

from __future__ import annotations

import asyncio
import json
import time

from _common import Load
from _gemini_client import gemini_client, settle_heap
from _http_load import timed_workers


def run_client_floor(
    emulator_url: str,
    run_id: str,
    duration_s: float,
    workers: int,
    stagger_s: float,
    stream: bool = False,
) -> None:
    """Measure the LangChain client alone and print its numbers as one JSON line."""
    load = asyncio.run(
        client_floor_load(emulator_url, workers, duration_s, run_id, stagger_s, stream)
    )
    print(
        json.dumps(
            {
                "requests": load.completed,
                "rps": load.rate,
                "p50_ms": load.p50_ms,
                "p99_ms": load.p99_ms,
                "errors": load.errors.samples,
                "error_count": load.errors.count,
            }
        )
    )


async def client_floor_load(
    emulator_url: str,
    workers: int,
    duration_s: float,
    run_id: str,
    stagger_s: float,
    stream: bool = False,
) -> Load:
    """The same staggered load through LangChain's Gemini client alone: the floor of a miss.

    promptbus must call Gemini through `ChatGoogleGenerativeAI`; this measures what
    that client costs by itself, configured as promptbus configures it: its google-genai
    client on an aiohttp session that does not read the environment per request, and the
    garbage collector set as `pipeline/heap.py` sets it. With `stream`, each call is an
    `astream` read to its end and timed to its first chunk with text.
    """
    from langchain_core.messages import HumanMessage

    llm, session = gemini_client(emulator_url)
    for warm in range(3):  # the client's first calls build its SDK client and session
        await llm.ainvoke([HumanMessage(content=f"warm {run_id} {warm}")])

    async def invoke(number: int) -> float | str:
        messages = [HumanMessage(content=f"floor {run_id} {number}")]
        first: float | None = None
        began = time.perf_counter()
        try:
            if not stream:
                await llm.ainvoke(messages)
                return time.perf_counter() - began
            async for chunk in llm.astream(messages):
                if first is None and chunk.content:
                    first = time.perf_counter() - began
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "the stream carried no text" if first is None else first

    settle_heap()
    try:
        return await timed_workers(invoke, workers, duration_s, stagger_s)
    finally:
        await session.close()
