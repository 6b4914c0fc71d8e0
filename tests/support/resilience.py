"""What the resilience tests share: models and routes of their own, fast settings, fault rules."""

import time
from typing import Any

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, Reply

# Models and routes only these tests use, so faults set on them touch nothing else.
TEST_MODELS = """

[models.test-primary]
provider = "gemini"
provider_model = "test-primary"
aliases = []
input_per_million = 1.0
output_per_million = 2.0

[models.test-backup]
provider = "gemini"
provider_model = "test-backup"
aliases = []
input_per_million = 0.5
output_per_million = 1.0

[models.test-limited]
provider = "gemini"
provider_model = "test-limited"
aliases = ["limited"]
input_per_million = 0.1
output_per_million = 0.1
rpm = 3

[models.test-openai]
provider = "openai"
provider_model = "test-openai"
aliases = []
input_per_million = 0.1
output_per_million = 0.2

[routes.primary-then-backup]
strategy = "fallback"
deployments = [{ model = "test-primary" }, { model = "test-backup" }]

[routes.blocked-then-openai]
strategy = "fallback"
fallback_on_blocked = true
deployments = [{ model = "test-primary" }, { model = "test-openai" }]

[routes.least-busy]
strategy = "least-busy"
deployments = [{ model = "test-primary" }, { model = "test-backup" }]
"""

PRIMARY = "gemini/test-primary"
BACKUP = "gemini/test-backup"

# Fast, but real: jittered backoff from 20 ms, a 2 s rate-limit window, a 1 s cooldown.
FAST = {
    "retry_base_s": 0.02,
    "retry_max_backoff_s": 0.2,
    "rate_limit_window_s": 2.0,
    "rate_limit_wait_s": 0.0,
    "breaker_failures": 3,
    "breaker_window_s": 30.0,
    "breaker_cooldown_s": 1.0,
}


async def set_faults(emulator: Emulator, *rules: dict[str, Any]) -> None:
    """Replace the emulator's fault rules."""
    url = f"{emulator.base_url}/control/faults"
    async with emulator.session.post(url, json={"rules": list(rules)}) as resp:
        assert resp.status == 200, await resp.text()


async def calls_by_model(emulator: Emulator) -> dict[str, int]:
    """Generate calls the emulator received, per model."""
    async with emulator.session.get(f"{emulator.base_url}/stats") as resp:
        return dict((await resp.json())["by_model"])


async def timed(gateway: Gateway, body: dict[str, Any]) -> tuple[Reply, float]:
    """POST /v1/generate; the reply and how long it took."""
    started = time.monotonic()
    reply = await gateway.generate(body)
    return reply, time.monotonic() - started


def fault(model: str, kind: str = "status", **fields: Any) -> dict[str, Any]:
    """One emulator fault rule for `model`."""
    return {"model": model, "fault": kind, **fields}
