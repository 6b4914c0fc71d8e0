"""The tenant label, capped: the first `limit` tenants a process sees keep their names."""

import threading
from typing import Final

# The label every tenant past the cap shares.
OTHER: Final = "other"


class TenantCap:
    """Bounds a label's cardinality: past `limit` distinct tenants, the rest are `other`.

    Each process keeps its own list (the first it saw), so a deployment of N processes shows
    at most N x `limit` names plus `other`; set the cap with that in mind.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the tenant cap must be at least 1, not {limit}")
        self._limit = limit
        self._named: set[str] = set()
        self._lock = threading.Lock()

    def label(self, tenant: str) -> str:
        """`tenant` if it is (or may become) one of the named ones, else `other`."""
        if tenant in self._named:
            return tenant
        with self._lock:
            if len(self._named) < self._limit:
                self._named.add(tenant)
                return tenant
        return OTHER
