"""What the stages share: the model catalogue, the response cache and the providers."""

from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.cache.responses import ResponseCache
from pipeline.catalog import ModelCatalog
from pipeline.errors import UpstreamUnavailable
from pipeline.providers.base import ChatProvider


@dataclass(frozen=True, slots=True)
class StageContext:
    """Infrastructure the stages run against; built once at start-up."""

    catalog: ModelCatalog
    cache: ResponseCache
    providers: Mapping[str, ChatProvider]

    def provider(self, name: str) -> ChatProvider:
        """The provider called `name`."""
        provider = self.providers.get(name)
        if provider is None:
            raise UpstreamUnavailable(f"provider {name!r} is not configured")
        return provider
