"""Google Gemini through LangChain's ChatGoogleGenerativeAI, over real HTTP."""

import asyncio
import urllib.request
from typing import Final

import aiohttp
from google.genai import Client
from google.genai.types import HttpOptions
from langchain_google_genai import ChatGoogleGenerativeAI
from pydantic import SecretStr
from yarl import URL

from pipeline.providers.langchain_base import LangChainProvider

GEMINI_API_URL: Final = "https://generativelanguage.googleapis.com"
API_VERSION: Final = "v1beta"
USER_AGENT: Final = "promptbus langchain-google-genai"
# Each event loop's session holds at most this many connections to the endpoint.
MAX_CONNECTIONS: Final = 256


class GeminiProvider(LangChainProvider):
    """Calls Gemini models; one LangChain client per model and event loop, reused.

    google-genai takes one total timeout per request and no separate connect timeout:
    its aiohttp transport sends `ClientTimeout(total=...)` with every request, which
    replaces any session-level `connect`, so `provider_connect_timeout_s` does not apply.

    The SDK's client gets an aiohttp session of ours (`HttpOptions.aiohttp_client`). The
    session google-genai makes by itself trusts the environment, so each request hops to a
    thread twice to read ~/.netrc and the proxy variables: about 0.4 ms of CPU per call and
    a queue behind a busy loop. Ours reads the proxy variables once, when the model is built,
    and bounds its connections.
    """

    def __init__(
        self, *, api_key: SecretStr, base_url: str, timeout_s: float, max_attempts: int
    ) -> None:
        super().__init__("gemini", timeout_s=timeout_s)
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        # The SDK reads 1 as "one attempt, no retries" and 0 as "its default of several".
        self._max_attempts = max(1, max_attempts)
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    def loop_scope(self) -> asyncio.AbstractEventLoop:
        """A model per event loop: its client's session belongs to the loop that made it."""
        return asyncio.get_running_loop()

    def build_model(self, provider_model: str) -> ChatGoogleGenerativeAI:
        """A ChatGoogleGenerativeAI for `provider_model`, with SDK retries off."""
        model = ChatGoogleGenerativeAI(
            model=provider_model,
            google_api_key=self._api_key,
            base_url=self.base_url,
            api_version=API_VERSION,
            max_retries=self._max_attempts,
            timeout=self._timeout_s,
            temperature=None,
        )
        proxy = env_proxy(self.base_url)
        model.client = Client(
            api_key=self._api_key.get_secret_value(),
            http_options=HttpOptions(
                base_url=self.base_url,
                api_version=API_VERSION,
                headers={"user-agent": USER_AGENT},
                aiohttp_client=self._session(),
                async_client_args={"proxy": proxy} if proxy else None,
            ),
        )
        return model

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            # A loop that has closed took its session with it.
            for stopped in [loop for loop in self._sessions if loop.is_closed()]:
                del self._sessions[stopped]
            session = self._sessions[loop] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS), trust_env=False
            )
        return session

    async def ready(self) -> bool:
        """Whether the models endpoint answers (any status below 500)."""
        url = f"{self.base_url}/{API_VERSION}/models"
        return await self._answers(url, {"x-goog-api-key": self._api_key.get_secret_value()})

    async def aclose(self) -> None:
        """Close the models' clients, then each loop's session on its own loop."""
        await super().aclose()
        sessions, self._sessions = self._sessions, {}
        current = asyncio.get_running_loop()
        for loop, session in sessions.items():
            if loop is current:
                await session.close()
            elif loop.is_running():
                closing = asyncio.run_coroutine_threadsafe(session.close(), loop)
                await asyncio.wait_for(asyncio.wrap_future(closing), timeout=5)
            # A session of a loop that has stopped cannot be awaited shut; it goes with it.


def env_proxy(base_url: str) -> str | None:
    """The proxy the environment names for `base_url` (HTTPS_PROXY, NO_PROXY...), if any."""
    url = URL(base_url)
    if url.host is None or bool(urllib.request.proxy_bypass(url.host)):
        return None
    return urllib.request.getproxies_environment().get(url.scheme)
