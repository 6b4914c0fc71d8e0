"""Where a provider batch is with the provider, kept in the batch record's JSON metadata.

The batches table has no column for it (and its schema belongs to its migrations): the
state lives under one reserved key of the `metadata` JSON column, which the Batch object
never shows and a caller's metadata may not use. It is written by the poll task only.
"""

from dataclasses import asdict, dataclass
from typing import Any, Final

from pipeline.db.batch_tables import BatchRecord

# The reserved metadata key (a caller's keys are refused with it).
PROVIDER_KEY: Final = "promptbus.provider"


@dataclass(frozen=True, slots=True)
class ProviderState:
    """A provider batch's job at the provider and its polling."""

    # The provider's name for the job, once submitted (Gemini: `batches/...`).
    job: str | None = None
    # Polls made; a poll task carries the number of the poll it makes.
    polls: int = 0
    # When the next poll is due (Unix time).
    next_at: float | None = None
    # When a submit was last begun (a run that finds it set and no job looks for one).
    submitting_at: float | None = None
    # Why the provider's job failed, once it did (the batch then ends `failed`).
    failure: str | None = None


def provider_state(batch: BatchRecord) -> ProviderState:
    """The batch's provider state (empty before it was submitted)."""
    raw = (batch.metadata_ or {}).get(PROVIDER_KEY)
    if not isinstance(raw, dict):
        return ProviderState()
    known = {name: raw[name] for name in ProviderState.__dataclass_fields__ if name in raw}
    return ProviderState(**known)


def with_state(metadata: dict[str, Any] | None, state: ProviderState) -> dict[str, Any]:
    """The metadata column holding the caller's metadata and `state`."""
    return {**(metadata or {}), PROVIDER_KEY: asdict(state)}


def callers_metadata(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """The caller's own metadata (without the provider state)."""
    if metadata is None or PROVIDER_KEY not in metadata:
        return metadata
    own = {key: value for key, value in metadata.items() if key != PROVIDER_KEY}
    return own or None
