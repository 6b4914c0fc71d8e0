"""Fault rules set through `/control/faults`: faults that do not live in the prompt."""

import random
from dataclasses import dataclass, field, replace
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.emulator.directives import Directives
from pipeline.emulator.state import Api, BadRequest, Json

Fault = Literal["status", "reset", "slow", "safety", "empty", "malformed_json"]


class FaultRule(BaseModel):
    """One rule: which calls it matches, what it does to them, and how often."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    model: str | None = None
    api: Api | None = None
    fault: Fault
    status: int | None = Field(default=None, ge=400, le=599)
    retry_after_s: float | None = Field(default=None, ge=0)
    delay_ms: float | None = Field(default=None, gt=0)
    after: int = Field(default=0, ge=0)
    times: int | None = Field(default=None, ge=1)
    probability: float = Field(default=1.0, ge=0, le=1)
    seed: int | None = None

    @model_validator(mode="after")
    def _fields_fit_the_fault(self) -> Self:
        """Require status for `status` and delay_ms for `slow`, and nowhere else."""
        if (self.fault == "status") != (self.status is not None):
            raise ValueError("status (400-599) is required for fault 'status' and only there")
        if self.retry_after_s is not None and self.fault != "status":
            raise ValueError("retry_after_s is only for fault 'status'")
        if (self.fault == "slow") != (self.delay_ms is not None):
            raise ValueError("delay_ms (> 0) is required for fault 'slow' and only there")
        return self

    def apply(self, directives: Directives) -> Directives:
        """Return the directives of a call this rule fires on."""
        if self.fault == "status":
            return replace(directives, status=self.status, retry_after_s=self.retry_after_s)
        if self.fault == "slow":
            return replace(directives, delay_ms=directives.delay_ms + (self.delay_ms or 0))
        if self.fault == "safety":
            return replace(directives, block="safety")
        if self.fault == "malformed_json":
            return replace(directives, json="malformed")
        if self.fault == "empty":
            return replace(directives, empty=True)
        return replace(directives, reset=True)


class _RuleList(BaseModel):
    """The body of `POST /control/faults`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    rules: list[FaultRule]


def parse_rules(body: object) -> list[FaultRule]:
    """Validate a `{"rules": [...]}` body; BadRequest names every problem."""
    if not isinstance(body, dict):
        raise BadRequest('invalid fault rules: the body must be an object {"rules": [...]}')
    try:
        return _RuleList.model_validate(body).rules
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"])
            problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
        raise BadRequest("invalid fault rules: " + "; ".join(problems)) from None


@dataclass
class _Armed:
    """A rule in force, with its counters and its own random sequence."""

    rule: FaultRule
    rng: random.Random = field(repr=False)
    matched: int = 0
    fired: int = 0


class FaultBook:
    """The rules in force, in order; the first that fires decides a call."""

    def __init__(self) -> None:
        self._armed: list[_Armed] = []

    def replace(self, rules: list[FaultRule]) -> None:
        """Put rules in force instead of the current ones, counters at zero."""
        self._armed = [_Armed(rule, random.Random(rule.seed)) for rule in rules]

    def listing(self) -> list[Json]:
        """Return each rule with its `matched` and `fired` counters."""
        return [
            {**armed.rule.model_dump(), "matched": armed.matched, "fired": armed.fired}
            for armed in self._armed
        ]

    def fire(self, api: Api, model: str) -> FaultRule | None:
        """Return the first rule that fires on this call, counting as it goes."""
        for armed in self._armed:
            rule = armed.rule
            if rule.model not in (None, model) or rule.api not in (None, api):
                continue
            armed.matched += 1
            if armed.matched <= rule.after:
                continue
            if rule.times is not None and armed.fired >= rule.times:
                continue
            if armed.rng.random() >= rule.probability:
                continue
            armed.fired += 1
            return rule
        return None
