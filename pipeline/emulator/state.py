"""What every part of the emulator shares: its settings, counters and wire types."""

from dataclasses import dataclass, field
from typing import Any, Final, Literal

EMULATOR_API_KEY: Final = "emulator"

Json = dict[str, Any]
Api = Literal["gemini", "openai"]
APIS: Final[tuple[Api, ...]] = ("gemini", "openai")


@dataclass(frozen=True)
class EmulatorConfig:
    """Emulator settings."""

    latency_ms: float = 0.0
    # How long a batch job stays pending, then running, before it answers.
    batch_step_ms: float = 500.0


def _zero_by_api() -> dict[str, int]:
    return dict.fromkeys(APIS, 0)


@dataclass
class EmulatorStats:
    """Counters of generate requests received (faulted and rejected calls included)."""

    calls: int = 0
    by_model: dict[str, int] = field(default_factory=dict)
    stream_calls: int = 0
    errors: int = 0
    by_api: dict[str, int] = field(default_factory=_zero_by_api)

    def count(self, api: Api, model: str | None, stream: bool) -> None:
        """Count one call as it arrives (model None: the request names none)."""
        self.calls += 1
        if model is not None:
            self.by_model[model] = self.by_model.get(model, 0) + 1
        self.by_api[api] += 1
        self.stream_calls += int(stream)

    def reset(self) -> None:
        """Set every counter to zero."""
        self.calls = self.stream_calls = self.errors = 0
        self.by_model.clear()
        self.by_api = _zero_by_api()


class BadRequest(Exception):
    """Raised for a request the real API would reject as invalid (400)."""
