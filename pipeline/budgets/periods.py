"""Budget periods: the UTC day or month a moment falls in."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")


@dataclass(frozen=True, slots=True)
class Window:
    """One period: its id (`2026-12-07`, `2026-12`), start and end (exclusive), in UTC."""

    id: str
    start: datetime
    end: datetime

    def seconds_left(self, now: datetime) -> float:
        """How long until the period ends (and the budget starts afresh)."""
        return max(0.0, (self.end - now).total_seconds())


def window(period: Period, now: datetime) -> Window:
    """The window of `period` that holds `now` (an aware datetime, any zone)."""
    now = now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return Window(start.strftime("%Y-%m-%d"), start, start + timedelta(days=1))
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return Window(start.strftime("%Y-%m"), start, end)
