"""Ids of files, batches and batch requests: time-ordered, so newest-first is by id."""

import secrets
import time


def new_id(prefix: str) -> str:
    """`prefix` then the time in milliseconds (hex, fixed width) and 8 random hex digits."""
    return f"{prefix}{int(time.time() * 1000):012x}{secrets.token_hex(4)}"
