"""Liveness and readiness: what GET /healthz and GET /readyz return."""

from typing import Literal

from pydantic import Field

from schemas._base import Envelope


class Health(Envelope):
    """The process is up, and which one answered."""

    status: Literal["ok"]
    pid: int


class Readiness(Envelope):
    """Whether every dependency answers, and each check's outcome."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, bool] = Field(description="provider, cache, and redis when configured")
