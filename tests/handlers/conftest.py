"""Fixtures for the stage tests: a real stage context on memory backends, and a dispatcher."""

from tests.handlers.stage_support import chains, dispatcher, stages

__all__ = ["chains", "dispatcher", "stages"]
