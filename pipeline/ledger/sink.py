"""What the request paths record usage into: the ledger, or nothing when it is off."""

from typing import Final, Protocol

from pipeline.ledger.entry import UsageEntry


class UsageSink(Protocol):
    """Takes one usage entry; never blocks, never raises."""

    def record(self, entry: UsageEntry) -> None:
        """Keep `entry` for the ledger."""
        ...


class Discard:
    """The sink of a process with the ledger off: records go nowhere."""

    def record(self, entry: UsageEntry) -> None:
        """Forget `entry`."""


DISCARD: Final = Discard()
