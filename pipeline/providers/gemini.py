"""Google Gemini through LangChain's ChatGoogleGenerativeAI, over real HTTP."""

from typing import Final

from langchain_google_genai import ChatGoogleGenerativeAI
from pydantic import SecretStr

from pipeline.providers.langchain_base import LangChainProvider

GEMINI_API_URL: Final = "https://generativelanguage.googleapis.com"
API_VERSION: Final = "v1beta"


class GeminiProvider(LangChainProvider):
    """Calls Gemini models; one LangChain client per model, reused across requests.

    google-genai takes one total timeout per request and no separate connect timeout:
    its aiohttp transport sends `ClientTimeout(total=...)` with every request, which
    replaces any session-level `connect`, so `provider_connect_timeout_s` does not apply.
    """

    def __init__(
        self, *, api_key: SecretStr, base_url: str, timeout_s: float, max_attempts: int
    ) -> None:
        super().__init__("gemini", timeout_s=timeout_s)
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        # The SDK reads 1 as "one attempt, no retries" and 0 as "its default of several".
        self._max_attempts = max(1, max_attempts)

    def build_model(self, provider_model: str) -> ChatGoogleGenerativeAI:
        """A ChatGoogleGenerativeAI for `provider_model`, with SDK retries off."""
        return ChatGoogleGenerativeAI(
            model=provider_model,
            google_api_key=self._api_key,
            base_url=self.base_url,
            api_version=API_VERSION,
            max_retries=self._max_attempts,
            timeout=self._timeout_s,
            temperature=None,
        )

    async def ready(self) -> bool:
        """Whether the models endpoint answers (any status below 500)."""
        url = f"{self.base_url}/{API_VERSION}/models"
        return await self._answers(url, {"x-goog-api-key": self._api_key.get_secret_value()})
