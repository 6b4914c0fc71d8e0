"""How often a supervised process may be restarted, and how long to pause before each."""

from collections import deque
from dataclasses import dataclass, field


@dataclass
class RestartBudget:
    """Restarts of one process within a moving window; the pause doubles with each one."""

    base_s: float = 0.5
    max_pause_s: float = 10.0
    window_s: float = 60.0
    max_restarts: int = 5
    _times: deque[float] = field(default_factory=deque)

    def next_pause(self, now: float) -> float | None:
        """The pause before the next restart at `now`, or None once the window's budget is spent."""
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) >= self.max_restarts:
            return None
        pause = min(self.base_s * 2.0 ** len(self._times), self.max_pause_s)
        self._times.append(now)
        return pause
