"""The settings a test gateway runs with."""

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pipeline.settings import Settings

# Every test gateway keeps its data (the SQLite database) in a directory of its own, here.
_DATA_ROOT = Path(tempfile.mkdtemp(prefix="promptbus-tests-"))
atexit.register(shutil.rmtree, _DATA_ROOT, True)

# A fixed key (32 bytes of 0x01), so webhook tests can verify signatures.
TEST_WEBHOOK_SECRET = "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="


def settings_for_test(**overrides: Any) -> Settings:
    """Settings for a test gateway: a free port, quiet logs, no real provider key."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "google_api_key": None,
        "openai_api_key": None,
        "log_format": "json",
        "log_level": "warning",
        # Sync-path tests need no job worker; job tests turn it on.
        "embedded_worker": False,
        "webhook_secret": TEST_WEBHOOK_SECRET,
        "webhook_allow_private": "127.0.0.0/8,::1/128",
    }
    values.update(overrides)
    if "data_dir" not in values:
        values["data_dir"] = Path(tempfile.mkdtemp(prefix="data-", dir=_DATA_ROOT))
    gemini_url = values.get("gemini_base_url")
    if gemini_url and "openai_base_url" not in values:
        # The test's emulator serves the OpenAI-compatible API too, under /v1.
        values["openai_base_url"] = f"{gemini_url.rstrip('/')}/v1"
    return Settings(**values)
