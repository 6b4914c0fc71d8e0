"""Tenants and API keys: keys stored as digests, a cached lookup, the auth modes.

The ingress authenticates with `Tenancy` (pipeline/ingress/auth.py), the admin API and the
CLI write through `TenantStore`, and the bridge asks it whether a bus event's tenant exists.
"""

from pipeline.tenancy.apikeys import digest_of, new_key
from pipeline.tenancy.directory import KeyDirectory
from pipeline.tenancy.grant import Grant
from pipeline.tenancy.last_used import LastUsed
from pipeline.tenancy.modes import Mode, describe, is_loopback, mode_of, refusal
from pipeline.tenancy.store import TenantStore
from pipeline.tenancy.tenancy import Tenancy

__all__ = [
    "Grant",
    "KeyDirectory",
    "LastUsed",
    "Mode",
    "Tenancy",
    "TenantStore",
    "describe",
    "digest_of",
    "is_loopback",
    "mode_of",
    "new_key",
    "refusal",
]
