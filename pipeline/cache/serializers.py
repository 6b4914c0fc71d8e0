"""aiocache serializers for promptbus caches."""

from __future__ import annotations

from typing import Any

import orjson
from aiocache.serializers import BaseSerializer


class OrjsonSerializer(BaseSerializer):  # type: ignore[misc]
    """Serialize values to JSON bytes with orjson; never falls back to pickle."""

    # None tells aiocache backends the payload is bytes, not text to decode.
    DEFAULT_ENCODING: str | None = None

    def dumps(self, value: Any) -> bytes:
        """Return the orjson encoding of ``value``."""
        return orjson.dumps(value)

    def loads(self, value: bytes | bytearray | memoryview | str | None) -> Any:
        """Decode orjson/JSON ``value``; ``None`` (a cache miss) stays ``None``."""
        if value is None:
            return None
        return orjson.loads(value)


class BytesSerializer(BaseSerializer):  # type: ignore[misc]
    """Pass bytes through untouched: for callers that encode their own values."""

    DEFAULT_ENCODING: str | None = None

    def dumps(self, value: bytes) -> bytes:
        """Return ``value`` as it is; it must already be bytes."""
        if not isinstance(value, bytes):
            raise TypeError(f"BytesSerializer stores bytes, not {type(value).__name__}")
        return value

    def loads(self, value: bytes | None) -> bytes | None:
        """Return ``value`` as it is."""
        return value
