"""LangChain's Gemini client configured as promptbus configures it, for the bench's baselines."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp

# promptbus's default `gc_gen0_threshold` (pipeline/heap.py).
GC_GEN0_THRESHOLD = 20_000


def gemini_client(emulator_url: str) -> tuple[Any, aiohttp.ClientSession]:
    """A `ChatGoogleGenerativeAI` on `emulator_url` and the session it uses; call it in a loop.

    As pipeline/providers/gemini.py builds it: SDK retries off, a total timeout, and the
    google-genai client on an aiohttp session that does not read the environment per request.
    """
    import aiohttp
    from google.genai import Client
    from google.genai.types import HttpOptions
    from langchain_google_genai import ChatGoogleGenerativeAI

    llm = ChatGoogleGenerativeAI(
        model="gemini-2.5-flash",
        google_api_key="emulator",
        base_url=emulator_url,
        api_version="v1beta",
        max_retries=1,
        timeout=30,
        temperature=None,
    )
    session = aiohttp.ClientSession(trust_env=False)
    llm.client = Client(
        api_key="emulator",
        http_options=HttpOptions(
            base_url=emulator_url, api_version="v1beta", aiohttp_client=session
        ),
    )
    return llm, session


def settle_heap() -> None:
    """The garbage collector as promptbus sets it once started."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
