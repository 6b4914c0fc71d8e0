"""The batch parts a process builds from its services: the store and the notices."""

from dataclasses import dataclass

from pipeline.batches.progress import BatchNotices
from pipeline.batches.store import BatchStore
from pipeline.services import Services


@dataclass(frozen=True, slots=True)
class BatchParts:
    """Where batches are kept, and who tells of them."""

    store: BatchStore
    notices: BatchNotices


def build_batches(services: Services) -> BatchParts:
    """The batch store on the services' database, and notices on its bus and webhooks."""
    settings = services.settings
    store = BatchStore(services.database, settings.batch_retention_s)
    notices = BatchNotices(
        store,
        services.publisher,
        services.ctx.webhooks,
        services.ctx.jobs,
        interval_s=settings.batch_progress_interval_s,
    )
    return BatchParts(store, notices)
