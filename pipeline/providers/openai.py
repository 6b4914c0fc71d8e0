"""OpenAI-compatible endpoints (OpenAI, vLLM, Ollama...) through LangChain's ChatOpenAI."""

from typing import Final

import openai
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from pipeline.providers.langchain_base import LangChainProvider

OPENAI_API_URL: Final = "https://api.openai.com/v1"


class OpenAIProvider(LangChainProvider):
    """Calls models behind an OpenAI-compatible Chat Completions API; one client per model."""

    def __init__(
        self,
        *,
        api_key: SecretStr,
        base_url: str,
        timeout_s: float,
        connect_timeout_s: float,
    ) -> None:
        super().__init__("openai", timeout_s=timeout_s)
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        # The SDK's own Timeout type (httpx2's since openai 3). It bounds each phase, not the
        # whole call: connect apart, the others at the total, enforced around the call too.
        self._timeout = openai.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s))

    def build_model(self, provider_model: str) -> ChatOpenAI:
        """A ChatOpenAI for `provider_model`: no SDK retries, Chat Completions only."""
        return ChatOpenAI(
            model=provider_model,
            api_key=self._api_key,
            base_url=self.base_url,
            timeout=self._timeout,
            max_retries=0,
            # vLLM, Ollama and the emulator speak Chat Completions, not the Responses API
            # that ChatOpenAI picks by itself for some model names.
            use_responses_api=False,
            # A stream's usage comes in a last chunk only when asked for; ChatOpenAI asks by
            # itself only of api.openai.com.
            stream_usage=True,
        )

    async def ready(self) -> bool:
        """Whether the models endpoint answers (any status below 500)."""
        headers = {"Authorization": f"Bearer {self._api_key.get_secret_value()}"}
        return await self._answers(f"{self.base_url}/models", headers)
