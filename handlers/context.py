"""What the stages share: the model catalogue, the response cache and the providers."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pipeline.cache.responses import ResponseCache
from pipeline.catalog import ModelCatalog
from pipeline.errors import UpstreamUnavailable
from pipeline.jobs.store import JobStore
from pipeline.providers.base import ChatProvider
from pipeline.templates import TemplateCatalog

if TYPE_CHECKING:
    from handlers.emit import CompletionSink
    from pipeline.resilience.router import Router
    from pipeline.webhooks.scheduler import WebhookScheduler


@dataclass(frozen=True, slots=True)
class StageContext:
    """Infrastructure the stages run against; built once at start-up."""

    catalog: ModelCatalog
    cache: ResponseCache
    providers: Mapping[str, ChatProvider]
    router: "Router"
    jobs: JobStore | None = None
    events: "CompletionSink | None" = None
    webhooks: "WebhookScheduler | None" = None
    claim_ttl_s: float = 24 * 3600
    templates: TemplateCatalog = field(default_factory=TemplateCatalog)

    def provider(self, name: str) -> ChatProvider:
        """The provider called `name`."""
        provider = self.providers.get(name)
        if provider is None:
            raise UpstreamUnavailable(f"provider {name!r} is not configured")
        return provider
