"""The Gemini emulator in the test's process, its counters and rules, and real clients on it."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from langchain_core.messages import AIMessage
from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_openai import ChatOpenAI

from pipeline.emulator import EMULATOR_API_KEY, EmulatorConfig, RunningEmulator, start_emulator

GEMINI_MODEL = "gemini-2.5-flash"
GEMINI_PROMPT = [("system", "be brief"), ("human", "hello")]
GEMINI_GENERATE = f"/v1beta/models/{GEMINI_MODEL}:generateContent"
OPENAI_MODEL = "gpt-4o-mini"
BEARER = {"Authorization": f"Bearer {EMULATOR_API_KEY}"}
ZERO_STATS = {
    "calls": 0,
    "by_model": {},
    "stream_calls": 0,
    "errors": 0,
    "by_api": {"gemini": 0, "openai": 0},
}


@dataclass
class Emulator:
    """The running emulator and a way to read its call counter."""

    running: RunningEmulator
    session: aiohttp.ClientSession

    @property
    def base_url(self) -> str:
        return self.running.base_url

    async def calls(self) -> int:
        """How many generate calls the emulator has received."""
        async with self.session.get(self.base_url + "/stats") as resp:
            return int((await resp.json())["calls"])


@asynccontextmanager
async def running(config: EmulatorConfig | None = None) -> AsyncIterator[RunningEmulator]:
    """Run an emulator for the duration of the block."""
    emu = await start_emulator(config or EmulatorConfig())
    try:
        yield emu
    finally:
        await emu.stop()


@asynccontextmanager
async def gemini_chat(emu: RunningEmulator, **kwargs: Any) -> AsyncIterator[ChatGoogleGenerativeAI]:
    """Build the real LangChain Gemini client pointed at the emulator, closing it afterwards."""
    # max_retries=1 is one attempt: google-genai counts the first try.
    options: dict[str, Any] = {"model": GEMINI_MODEL, "max_retries": 1, "timeout": 10, **kwargs}
    llm = ChatGoogleGenerativeAI(
        google_api_key=EMULATOR_API_KEY, base_url=emu.base_url, api_version="v1beta", **options
    )
    try:
        yield llm
    finally:
        await llm.aclose()


async def gemini_invoke(llm: ChatGoogleGenerativeAI, text: str) -> AIMessage:
    """Ask one question with a fixed system prompt."""
    return await llm.ainvoke([("system", "be brief"), ("human", text)])


def gemini_stats(calls: int, stream_calls: int = 0, errors: int = 0) -> dict[str, object]:
    """The counters after `calls` Gemini calls to GEMINI_MODEL."""
    return {
        **ZERO_STATS,
        "calls": calls,
        "by_model": {GEMINI_MODEL: calls},
        "stream_calls": stream_calls,
        "errors": errors,
        "by_api": {"gemini": calls, "openai": 0},
    }


def openai_chat(emu: RunningEmulator, **kwargs: Any) -> ChatOpenAI:
    """Build the real LangChain OpenAI client pointed at the emulator's `/v1`."""
    options: dict[str, Any] = {
        "model": OPENAI_MODEL,
        "api_key": EMULATOR_API_KEY,
        "max_retries": 0,
        "timeout": 10,
        **kwargs,
    }
    return ChatOpenAI(base_url=f"{emu.base_url}/v1", **options)


async def read_stats(http: aiohttp.ClientSession) -> dict[str, Any]:
    """Read the emulator's counters."""
    async with http.get("/stats") as resp:
        assert resp.status == 200
        result: dict[str, Any] = await resp.json()
        return result


async def set_rules(http: aiohttp.ClientSession, *rules: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace the emulator's fault rules; return the listing it answers."""
    async with http.post("/control/faults", json={"rules": list(rules)}) as resp:
        assert resp.status == 200, await resp.text()
        listing: list[dict[str, Any]] = (await resp.json())["rules"]
        return listing
