"""Waiting, with a deadline, for something a test cannot be told about."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def poll(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, timeout_s: float, what: str
) -> T:
    """Await `read()` until `done(value)`, with a deadline; the value that was done."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout_s:g}s; last: {value!r}")
        await asyncio.sleep(0.02)
