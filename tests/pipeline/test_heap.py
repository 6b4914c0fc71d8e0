"""Settling the heap once started: start-up objects frozen, young collections rarer."""

import gc
import weakref
from collections.abc import Iterator

import pytest

from pipeline import heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_settle_freezes_what_is_alive_and_sets_the_young_threshold(restored_gc: None):
    survivor = [object() for _ in range(100)]
    old_gen1, old_gen2 = gc.get_threshold()[1:]

    heap.settle(12_345)

    assert gc.get_freeze_count() >= len(survivor)
    assert gc.get_threshold() == (12_345, old_gen1, old_gen2)


def test_cycles_made_after_settling_are_still_collected(restored_gc: None):
    heap.settle(100)

    class Node:
        partner: "Node | None" = None

    first, second = Node(), Node()
    first.partner, second.partner = second, first
    gone = weakref.ref(first)
    del first, second
    gc.collect()

    assert gone() is None
