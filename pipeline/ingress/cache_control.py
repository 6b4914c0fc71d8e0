"""The HTTP Cache-Control request header, read into the body's cache controls."""

from schemas import CacheControl

# RFC 9111 1.2.2: a delta-seconds too big to represent means 2**31 (about 68 years).
MAX_DELTA_SECONDS = 2**31


def merge_cache_control(header: str | None, body: CacheControl) -> CacheControl:
    """The body's cache controls tightened by a Cache-Control header, if any."""
    if not header:
        return body
    no_cache, no_store, max_age = body.no_cache, body.no_store, body.max_age
    for directive in header.split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip().lower()
        if name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name == "max-age":
            seconds = _seconds(value)
            if seconds is not None:
                max_age = seconds if max_age is None else min(max_age, seconds)
    if (no_cache, no_store, max_age) == (body.no_cache, body.no_store, body.max_age):
        return body
    return body.model_copy(update={"no_cache": no_cache, "no_store": no_store, "max_age": max_age})


def _seconds(value: str) -> int | None:
    value = value.strip().strip('"')
    # RFC 9111: an invalid max-age is ignored, not an error. Only ASCII digits are digits
    # (str.isdigit also says yes to "²"), and a value is capped before int() reads it.
    if not (value.isascii() and value.isdigit()):
        return None
    return MAX_DELTA_SECONDS if len(value) > 10 else min(int(value), MAX_DELTA_SECONDS)
