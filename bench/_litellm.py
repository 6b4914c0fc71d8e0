"""LiteLLM's proxy as the streams bench's reference: its venv under /tmp, its config, its server."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from _common import HOST, BenchError, child_env, free_port, wait_healthy
from _fast_bench import Bench
from _stream_bench import EMULATOR_KEY

# The newest release whose `proxy` extra resolves on the package index this machine reaches:
# from 1.108.14 on it pins litellm-proxy-extras (and from 1.110.0 litellm-proxy) releases the
# index does not hold. Releases known to be compromised were pulled from the index.
LITELLM_VERSION: Final = "1.108.0"
LITELLM_MODEL: Final = "gpt-4o-mini"
DOWNLOAD_TIMEOUT_S: Final = 300.0
INSTALL_TIMEOUT_S: Final = 900.0
# Its start-up imports the whole proxy: 40 s on an idle 2-core machine.
STARTUP_TIMEOUT_S: Final = 180.0
# Every remote fetch LiteLLM makes at start-up has a switch to its bundled copy; unknown ones
# meet a proxy that is not there (loopback calls, the emulator's, go direct).
_OFFLINE: Final = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "HTTP_PROXY": f"http://{HOST}:9",
    "HTTPS_PROXY": f"http://{HOST}:9",
    "NO_PROXY": f"{HOST},localhost",
}


@dataclass(frozen=True)
class LiteLLM:
    """A running LiteLLM proxy: its base URL, the master key every request carries, its pid."""

    url: str
    key: str
    pid: int

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header of its master key."""
        return {"Authorization": f"Bearer {self.key}"}


def venv_dir(version: str) -> Path:
    """Where LiteLLM `version` is installed: a venv of its own, kept between runs."""
    return Path(tempfile.gettempdir()) / f"promptbus-bench-litellm-{version}"


async def _step(bench: Bench, name: str, argv: list[str], timeout_s: float) -> str | None:
    """Run one install step as a child; None if it succeeded, else its last words."""
    child = bench.children.start(name, argv)
    try:
        code = await bench.finish(child, timeout_s, name)
    except BenchError:
        return f"{name} did not finish within {timeout_s:g}s"
    if code == 0:
        return None
    # pip's index configuration here warns about every missing local mirror first.
    lines = [line for line in child.output().splitlines() if not line.startswith("WARNING:")]
    return f"{name} exited with {code}: {(lines or ['no output'])[-1]}"


async def install(bench: Bench) -> Path | str:
    """The `litellm` command of its venv, installed if need be; or why it cannot be."""
    venv = venv_dir(LITELLM_VERSION)
    command, stamp = venv / "bin" / "litellm", venv / ".installed"
    if stamp.exists() and command.exists():
        return command
    pip = ["-m", "pip", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory(prefix="promptbus-bench-litellm-") as tmp:
        wheel = f"litellm=={LITELLM_VERSION}"
        download = [sys.executable, *pip, "download", "--quiet", "--no-deps", "-d", tmp, wheel]
        if problem := await _step(bench, "pip-download", download, DOWNLOAD_TIMEOUT_S):
            return problem
    print(f"LiteLLM: installing litellm[proxy]=={LITELLM_VERSION} into {venv} (once; minutes)")
    shutil.rmtree(venv, ignore_errors=True)
    python = str(venv / "bin" / "python")
    steps = [
        ("venv", [sys.executable, "-m", "venv", str(venv)]),
        ("pip-install", [python, *pip, "install", "--quiet", f"litellm[proxy]=={LITELLM_VERSION}"]),
    ]
    for name, argv in steps:
        if problem := await _step(bench, name, argv, INSTALL_TIMEOUT_S):
            return problem
    stamp.touch()
    return command


def write_config(path: Path, emulator_url: str, key: str) -> None:
    """LiteLLM's config: one model on the emulator's OpenAI API, the in-memory cache on."""
    config = {
        "model_list": [
            {
                "model_name": LITELLM_MODEL,
                "litellm_params": {
                    "model": f"openai/{LITELLM_MODEL}",
                    "api_base": f"{emulator_url}/v1",
                    "api_key": EMULATOR_KEY,
                },
            }
        ],
        "litellm_settings": {"cache": True, "cache_params": {"type": "local"}},
        # It refuses to start without a master key (every request would be unauthenticated).
        "general_settings": {"master_key": key},
    }
    # JSON is YAML: the config needs no YAML writer in the bench.
    path.write_text(json.dumps(config, indent=2))


async def start(bench: Bench, command: Path, emulator_url: str) -> LiteLLM:
    """`litellm --config` on a free port with one worker, logging warnings only; once healthy."""
    port, key = free_port(), f"sk-bench-{os.urandom(16).hex()}"
    config = bench.work_dir / "litellm.yaml"
    write_config(config, emulator_url, key)
    argv = [str(command), "--config", str(config), "--host", HOST, "--port", str(port)]
    # One worker process as promptbus serve runs one; LITELLM_LOG as PROMPTBUS_LOG_LEVEL.
    env = child_env(LITELLM_LOG="WARNING", **_OFFLINE)
    child = bench.children.start("litellm", [*argv, "--num_workers", "1"], env)
    url = f"http://{HOST}:{port}"
    await wait_healthy(bench.session, child, f"{url}/health/liveliness", STARTUP_TIMEOUT_S)
    print(f"LiteLLM {LITELLM_VERSION}: pid {child.process.pid}, {url}, in-memory cache, 1 worker")
    return LiteLLM(url, key, child.process.pid)
