"""The `promptbus` command and `make run`, as a newcomer meets them."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROMPTBUS = Path(sys.executable).parent / "promptbus"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTBUS_")}
    env.pop("GOOGLE_API_KEY", None)
    env.update(extra)
    return env


def test_version_and_help():
    version = subprocess.run([PROMPTBUS, "--version"], capture_output=True, text=True, check=True)
    helped = subprocess.run([PROMPTBUS, "--help"], capture_output=True, text=True, check=True)

    assert version.stdout.startswith("promptbus ")
    for command in ("serve", "emulator", "schemas"):
        assert command in helped.stdout


def test_serve_help_names_host_and_port():
    helped = subprocess.run(
        [PROMPTBUS, "serve", "--help"], capture_output=True, text=True, check=True
    )

    assert "--host" in helped.stdout
    assert "--port" in helped.stdout


def post_generate(port: int, prompt: str) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/generate",
        data=b'{"model":"flash","prompt":"%s"}' % prompt.encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200
        return bytes(resp.read())


def read_until(proc: subprocess.Popen[str], marker: str, deadline_s: float) -> list[str]:
    """Output lines up to and including the first that contains `marker`."""
    lines: list[str] = []
    deadline = time.monotonic() + deadline_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"no line with {marker!r} in time; got: {lines[-20:]}")


def spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start a command in its own process group, its output merged into one pipe."""
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    # make starts promptbus as its child: signal the whole process group.
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@pytest.mark.timeout(300)
def test_make_run_serves_a_real_answer():
    # Given `make run` on a free port, with no key and no configuration
    port = free_port()
    proc = spawn(
        ["make", "--no-print-directory", "run"],
        clean_env(PROMPTBUS_PORT=str(port), PROMPTBUS_LOG_FORMAT="console"),
    )
    try:
        # (make may first install the project into .venv on a fresh machine)
        lines = read_until(proc, "try: curl", deadline_s=240)
        first = next(line for line in lines if "listening" in line)
        assert not any("promptbus" in line for line in lines[: lines.index(first)] if "[" in line)
        # Then its first log line says where, which provider, and why the emulator runs
        assert f"http://127.0.0.1:{port}" in first
        assert "built-in emulator at 127.0.0.1:" in first
        assert "GOOGLE_API_KEY" in first
        assert any(line.startswith("try: curl -s http://127.0.0.1:") for line in lines)

        # And it answers the README's curl request through the emulator
        answer = post_generate(port, "hello")
        assert b'"text":"[gemini-2.5-flash] hello' in answer
        assert b'"finish_reason":"stop"' in answer
    finally:
        stop(proc)
    assert proc.returncode is not None


def test_serve_flags_override_the_environment():
    port = free_port()
    proc = spawn(
        [str(PROMPTBUS), "serve", "--host", "127.0.0.1", "--port", str(port)],
        clean_env(PROMPTBUS_PORT="1", PROMPTBUS_LOG_FORMAT="json"),
    )
    try:
        lines = read_until(proc, "try: curl", deadline_s=60)
        assert f'"listen":"http://127.0.0.1:{port}"' in lines[0]
        assert b"from-flags" in post_generate(port, "from-flags")
    finally:
        stop(proc)
    assert proc.returncode == 0


def test_serve_and_worker_help_name_the_process_flags():
    serve = subprocess.run(
        [PROMPTBUS, "serve", "--help"], capture_output=True, text=True, check=True
    )
    worker = subprocess.run(
        [PROMPTBUS, "worker", "--help"], capture_output=True, text=True, check=True
    )

    assert "--processes N|auto" in serve.stdout
    assert "--child" not in serve.stdout  # the supervisor's own flags stay hidden
    assert "--concurrency N" in worker.stdout
    assert "{threads,prefork}" in worker.stdout


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["serve", "--processes", "0"], {}, "invalid --processes or PROMPTBUS_PROCESSES: "),
        (["serve"], {"PROMPTBUS_PROCESSES": "many"}, "must be a whole number from 1 to 256"),
        (["serve"], {"PROMPTBUS_PORT": "http"}, "invalid --port or PROMPTBUS_PORT: "),
        (["worker", "--concurrency", "0"], {}, "invalid --concurrency or PROMPTBUS_WORKER_CON"),
        (["worker", "--pool", "forks"], {}, "argument --pool: invalid choice: 'forks'"),
    ],
)
def test_bad_settings_stop_start_up_with_a_clear_message(
    argv: list[str], env: dict[str, str], message: str
):
    run = subprocess.run(
        [PROMPTBUS, *argv], capture_output=True, text=True, env=clean_env(**env), timeout=60
    )

    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
