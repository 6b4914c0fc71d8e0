"""The garbage collector, set for a long-running server.

promptbus imports a large, long-lived heap (LangChain, google-genai, Celery, pydantic
models by the thousand) and then allocates many short-lived objects per request. With
CPython's defaults each full collection walks that whole start-up heap, and a young
collection runs every 700 allocations: on a loaded loop that is several milliseconds of
pause at a time, paid by every request in flight. Two standard remedies:

- `gc.freeze()` once start-up is over moves every object alive then to a permanent
  generation that collections skip (they hold no garbage worth finding);
- a larger first-generation threshold makes young collections rarer, each over more
  objects, for the same work in fewer pauses.

Memory stays bounded: objects in reference cycles are still found, just in larger batches.
"""

import gc


def settle(gen0_threshold: int) -> None:
    """Freeze what start-up left alive and set the young-generation threshold."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
