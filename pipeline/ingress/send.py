"""The send side of an ingress: jobs accepted and published, and the sync fast path."""

from dataclasses import dataclass

from pipeline.ingress.memo import ParsedBodies
from pipeline.ingress.submit import JobSubmitter
from pipeline.services import Services
from pipeline.sessions import SessionWindow
from pipeline.sync_path import SyncPath


@dataclass(frozen=True)
class SendSide:
    """What the HTTP routes call on top of the shared services."""

    submitter: JobSubmitter
    sync_path: SyncPath
    bodies: ParsedBodies

    @classmethod
    def build(cls, services: Services) -> "SendSide":
        """The send side over `services`."""
        settings, ctx = services.settings, services.ctx
        return cls(
            submitter=JobSubmitter(
                ctx,
                services.publisher,
                services.celery,
                idempotency_ttl_s=settings.idempotency_ttl_s,
                window=SessionWindow.of(settings),
            ),
            sync_path=SyncPath(
                ctx,
                coalesce_wait_s=settings.coalesce_wait_s,
                across_processes=services.backends.across_processes,
            ),
            bodies=ParsedBodies(ctx.catalog, ctx.templates),
        )
