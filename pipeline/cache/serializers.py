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
