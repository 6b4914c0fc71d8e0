"""`promptbus tenants` / `keys` from a shell, and `serve` refusing to serve beyond loopback open.

The first test creates a tenant and a key with the console script, in processes of their own;
the other commands run in this process (the same parser and command code, less a process's
start-up), where what a test checks is what the command says and does.
"""

import asyncio
import io
import json
import subprocess
import urllib.error
import urllib.request
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from pipeline.cli import _parser
from pipeline.tenancy import cli as tenancy_cli
from tests.e2e.test_cli import PROMPTBUS, clean_env, free_port, read_until, spawn, stop
from tests.support.gateway import GatewayFactory
from tests.support.settings import settings_for_test
from tests.support.tenants import generate


def promptbus(data_dir: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMPTBUS), *argv],
        capture_output=True,
        text=True,
        env=clean_env(PROMPTBUS_DATA_DIR=str(data_dir), **env),
        timeout=60,
    )


def in_process(data_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """A `tenants` or `keys` command run here, on `data_dir`'s database: its code and output.

    A command's failure is an exception that fails the test, as a traceback would. It runs
    its own event loop: a test on one calls it in a thread.
    """
    args = _parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = tenancy_cli.run(args, settings_for_test(data_dir=data_dir))
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


def made_key(data_dir: Path, tenant: str = "acme", *flags: str) -> str:
    assert in_process(data_dir, "tenants", "create", tenant).returncode == 0
    made = in_process(data_dir, "keys", "create", "--tenant", tenant, *flags)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


async def test_the_cli_makes_a_key_that_works_and_prints_it_once(
    tmp_path: Path, start_gateway: GatewayFactory
) -> None:
    # Given a tenant made from the CLI
    created = promptbus(tmp_path, "tenants", "create", "acme", "--name", "Acme")
    assert created.returncode == 0, created.stderr
    listed = await asyncio.to_thread(in_process, tmp_path, "tenants", "list")
    assert "acme" in listed.stdout

    # When a key is made for it
    made = promptbus(tmp_path, "keys", "create", "--tenant", "acme", "--models", "flash,pro")

    # Then the key is alone on stdout, and said nowhere else
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("pb_")
    assert made.stdout == key + "\n"
    assert key not in made.stderr
    assert "shown this once" in made.stderr
    listed = await asyncio.to_thread(in_process, tmp_path, "keys", "list", "--tenant", "acme")
    assert listed.returncode == 0
    assert key not in listed.stdout
    assert key[:11] in listed.stdout  # its prefix
    assert "flash,pro" in listed.stdout

    # And a gateway on that database takes it, and refuses a request without it
    gateway = await start_gateway(data_dir=tmp_path)
    assert (await generate(gateway.session, gateway.url, key, "from the cli")).status == 200
    assert (await generate(gateway.session, gateway.url, None, "no key")).status == 401

    # And once revoked from the CLI, it is refused (within the key cache's TTL)
    key_id = listed.stdout.split("\t", 1)[0]
    revoked = await asyncio.to_thread(in_process, tmp_path, "keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stdout


BAD_INPUT = [
    (["tenants", "create", "has space"], 2, "promptbus: invalid id: String should match"),
    (["keys", "create", "--tenant", "nobody"], 1, "promptbus: no tenant 'nobody'"),
    (["keys", "create", "--tenant", "acme", "--rpm", "0"], 2, "promptbus: invalid rpm"),
    (["keys", "revoke", "key_nope"], 1, "promptbus: no key 'key_nope'"),
]


def test_bad_cli_input_says_why_and_changes_nothing(tmp_path: Path) -> None:
    assert in_process(tmp_path, "tenants", "create", "acme").returncode == 0

    for argv, code, message in BAD_INPUT:
        run = in_process(tmp_path, *argv)

        assert run.returncode == code, argv
        assert message in run.stderr, argv
        assert "Traceback" not in run.stderr

    assert in_process(tmp_path, "keys", "list", "--tenant", "acme").stdout == ""
    assert in_process(tmp_path, "tenants", "list").stdout.split("\t")[0] == "acme"


def test_serve_refuses_a_public_address_with_no_keys(tmp_path: Path) -> None:
    run = promptbus(tmp_path, "serve", "--host", "0.0.0.0", "--port", "0")

    assert run.returncode == 2
    assert "refusing to serve on 0.0.0.0" in run.stderr
    assert "PROMPTBUS_AUTH=off" in run.stderr
    assert "listening" not in run.stdout + run.stderr


def test_serve_starts_on_a_public_address_with_auth_off(tmp_path: Path) -> None:
    port = free_port()
    proc = spawn(
        [str(PROMPTBUS), "serve", "--host", "0.0.0.0", "--port", str(port)],
        clean_env(
            PROMPTBUS_DATA_DIR=str(tmp_path), PROMPTBUS_AUTH="off", PROMPTBUS_LOG_FORMAT="json"
        ),
    )
    try:
        lines = read_until(proc, "listening", deadline_s=60)
        assert "auth off (PROMPTBUS_AUTH=off)" in lines[0]
    finally:
        stop(proc)


def test_serve_says_who_may_call_and_never_logs_a_key(tmp_path: Path) -> None:
    # Given no keys: the first log line says every request is tenant default
    port = free_port()
    env = clean_env(PROMPTBUS_DATA_DIR=str(tmp_path), PROMPTBUS_LOG_LEVEL="debug")
    argv = [str(PROMPTBUS), "serve", "--port", str(port)]
    proc = spawn(argv, env)
    try:
        lines = read_until(proc, "listening", deadline_s=60)
        assert "no API keys configured: every request is tenant 'default'" in lines[0]
    finally:
        stop(proc)

    # When a key exists, the gateway says keys are required
    key = made_key(tmp_path)
    proc = spawn(argv, env)
    try:
        lines = read_until(proc, "try: curl", deadline_s=60)
        assert "API keys required" in lines[0]
        # And requests with the key, a wrong key and a Gemini ?key= are served or refused
        statuses = [
            _post(port, "/v1/generate", {"Authorization": f"Bearer {key}"}),
            _post(port, "/v1/generate", {"Authorization": f"Bearer {key}x"}),
            _post(port, f"/v1beta/models/nope:generateContent?key={key}x", {}),
        ]
        assert statuses == [200, 401, 401]
    finally:
        stop(proc)
    assert proc.stdout is not None
    output = "\n".join(lines) + proc.stdout.read()
    # Then no line of its output holds the key, or the wrong one
    assert "request failed" in output
    assert key[11:] not in output


def _post(port: int, path: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps({"model": "flash", "prompt": "hi"}).encode(),
        headers={"content-type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
