"""Standard Webhooks signatures: HMAC-SHA256 over `{id}.{timestamp}.{body}`.

Secrets look like `whsec_<base64 of the key>`. While a secret is being rotated a
message carries one signature per secret, space separated, and a verifier
accepts it if any one matches.
"""

import base64
import hashlib
import hmac
import os
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
_KEY_BYTES = 32


def new_secret() -> str:
    """A fresh `whsec_` secret with a 256-bit key."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(_KEY_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The key bytes of a `whsec_` secret; ValueError if it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret must start with 'whsec_'")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError as exc:
        raise ValueError("a webhook secret must be 'whsec_' then base64") from exc
    if len(key) < 16:
        raise ValueError("a webhook secret's key must be at least 16 bytes")
    return key


def tenant_secret_of(master: str, tenant: str) -> str:
    """The `whsec_` secret of `tenant`'s per-job webhooks, derived from the master secret.

    Each tenant's receivers verify with a secret of its own, so one tenant cannot sign a
    delivery another's receiver would accept; no secret per tenant needs storing.
    """
    derived = hmac.new(
        secret_key(master), b"promptbus/tenant-webhook-secret/v1:" + tenant.encode(), hashlib.sha256
    ).digest()
    return SECRET_PREFIX + base64.b64encode(derived).decode()


def signature(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,<base64>` for each secret, space separated."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(secret_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets
    )


def signed_headers(
    secrets: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secrets, message_id, timestamp, body),
    }
