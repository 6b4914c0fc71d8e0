"""The official google-genai client and LangChain's ChatGoogleGenerativeAI, aimed at promptbus."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from google import genai
from google.genai.types import HttpOptions
from langchain_google_genai import ChatGoogleGenerativeAI

VERSIONS = ("v1", "v1beta")


@asynccontextmanager
async def genai_client(
    base_url: str, api_version: str, api_key: str = "anything"
) -> AsyncIterator[genai.Client]:
    """A google-genai client on `base_url`, as a user would build one; closed afterwards."""
    client = genai.Client(
        api_key=api_key, http_options=HttpOptions(base_url=base_url, api_version=api_version)
    )
    try:
        yield client
    finally:
        await client.aio.aclose()
        client.close()


@asynccontextmanager
async def gemini_chat_on(base_url: str, **kwargs: Any) -> AsyncIterator[ChatGoogleGenerativeAI]:
    """ChatGoogleGenerativeAI on `base_url` (v1beta, one attempt: promptbus retries)."""
    options: dict[str, Any] = {"model": "flash", "max_retries": 1, "timeout": 10, **kwargs}
    llm = ChatGoogleGenerativeAI(
        base_url=base_url, api_version="v1beta", google_api_key="x", **options
    )
    try:
        yield llm
    finally:
        await llm.aclose()


def gemini_path(model: str, method: str, version: str = "v1beta") -> str:
    """The path google-genai calls for `model`'s `method`."""
    return f"/{version}/models/{model}:{method}"


def header(response: Any, name: str) -> str | None:
    """A header of the HTTP response a google-genai object came in (the SDK keeps its case)."""
    headers = response.sdk_http_response.headers or {}
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)
