"""No secret in anything a run wrote: logs, bodies, headers, /metrics, spans, CLI output.

A real gateway with keys on, an admin key, a webhook secret, provider keys and tracing runs
a scenario over every surface; then everything it (and a CLI subprocess on its database)
wrote is scanned for each secret and its obvious encodings.
"""

import asyncio
import base64
import logging
import os
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

from tests.support.job_env import JobEnv, job_env
from tests.support.polling import poll
from tests.support.traces import MemorySpans
from tests.support.webhook_flows import FAST
from tests.support.webhook_receivers import receiving

ASK = {"model": "flash", "prompt": "hello"}
CHAT = {"model": "flash", "messages": [{"role": "user", "content": "hi"}]}
GEMINI = {"contents": [{"parts": [{"text": "hi"}]}]}
GEMINI_PATH = "/v1beta/models/flash:generateContent"


def _secret(prefix: str) -> str:
    return f"{prefix}{os.urandom(12).hex()}"


ADMIN_KEY = _secret("admin-")
GOOGLE_KEY = _secret("AIza-test-")
OPENAI_KEY = _secret("sk-test-")
WEBHOOK_SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
BAD_KEY = _secret("pb_guess")


def encodings(secret: str) -> set[str]:
    """`secret` as it might show up: raw, in a header, quoted, base64, hex, JSON-escaped."""
    raw = secret.encode()
    forms = {
        secret,
        f"Bearer {secret}",
        urllib.parse.quote(secret, safe=""),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
        orjson.dumps(secret).decode()[1:-1],
    }
    if secret.startswith("whsec_"):  # the key bytes of a Standard Webhooks secret
        key = base64.b64decode(secret.removeprefix("whsec_"))
        forms |= {secret.removeprefix("whsec_"), key.hex(), base64.urlsafe_b64encode(key).decode()}
    return {form for form in forms if len(form) >= 12}


class Transcript:
    """Everything the gateway sent back, as text: statuses, headers and bodies."""

    def __init__(self, env: JobEnv) -> None:
        self.env = env
        self.texts: list[str] = []

    async def send(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        record: bool = True,
    ) -> tuple[int, Any]:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        url = self.env.gateway.url + path
        async with self.env.session.request(method, url, json=json, headers=sent) as resp:
            body = await resp.read()
            if record:
                self.texts.append(
                    f"{resp.status} {dict(resp.headers)!r} {body.decode('utf-8', 'replace')}"
                )
        try:
            return resp.status, orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return resp.status, body.decode()


async def _cli(data_dir: Path, *args: str) -> str:
    """A `promptbus` CLI run on the gateway's database, with the secrets in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTBUS_")}
    env |= {
        "PROMPTBUS_DATA_DIR": str(data_dir),
        "PROMPTBUS_ADMIN_KEY": ADMIN_KEY,
        "PROMPTBUS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GOOGLE_API_KEY": GOOGLE_KEY,
        "PROMPTBUS_OPENAI_API_KEY": OPENAI_KEY,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipeline.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return out.decode() + err.decode()


async def test_no_secret_appears_in_anything_a_run_wrote(
    tmp_path: Path,
    logs: list[structlog.typing.EventDict],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    memory = MemorySpans()
    written: list[str] = []
    secrets = {ADMIN_KEY, GOOGLE_KEY, OPENAI_KEY, WEBHOOK_SECRET, BAD_KEY}
    async with (
        job_env(
            "memory",
            span_exporter=memory.exporter,
            admin_key=ADMIN_KEY,
            google_api_key=GOOGLE_KEY,
            openai_api_key=OPENAI_KEY,
            webhook_secret=WEBHOOK_SECRET,
            auth="on",
            data_dir=tmp_path,
            log_level="debug",
            **FAST,
        ) as env,
        receiving() as receiver,
    ):
        memory.tracing.append(env.gateway.services.tracing)
        run = Transcript(env)
        # Given a tenant and its key (shown this once, so that response is not scanned)
        status, _ = await run.send("POST", "/v1/admin/tenants", key=ADMIN_KEY, json={"id": "acme"})
        assert status == 201
        status, made = await run.send(
            "POST", "/v1/admin/tenants/acme/keys", key=ADMIN_KEY, json={"name": "ci"}, record=False
        )
        assert status == 201
        key = made["key"]
        secrets.add(key)

        # When it is used well and badly on every surface
        for path, body in (("/v1/generate", ASK), ("/v1/chat/completions", CHAT)):
            assert (await run.send("POST", path, key=key, json=body))[0] == 200
            assert (await run.send("POST", path, key=BAD_KEY, json=body))[0] == 401
        assert (await run.send("POST", GEMINI_PATH, json=GEMINI, headers={"x-goog-api-key": key}))[
            0
        ] == 200
        assert (
            await run.send("POST", GEMINI_PATH, json=GEMINI, headers={"x-goog-api-key": BAD_KEY})
        )[0] == 401
        assert (await run.send("POST", f"{GEMINI_PATH}?key={BAD_KEY}", json=GEMINI))[0] == 401
        # And the admin API is called (and refused to a tenant's key and to a bad one)
        for path in ("/v1/admin/tenants", "/v1/admin/tenants/acme/keys", "/v1/admin/tenants/acme"):
            assert (await run.send("GET", path, key=ADMIN_KEY))[0] == 200
        assert (await run.send("GET", "/v1/admin/tenants", key=key))[0] == 403
        assert (await run.send("GET", "/v1/admin/tenants", key=BAD_KEY))[0] == 401
        # And errors happen: bad input, an unknown model, an upstream failure
        assert (await run.send("POST", "/v1/generate", key=key, json={"model": "flash"}))[0] in (
            400,
            422,
        )
        assert (
            await run.send("POST", "/v1/generate", key=key, json={"model": "nope", "prompt": "x"})
        )[0] == 404
        failing = {"model": "flash", "prompt": "[[emulator:status=400]] fail"}
        assert (await run.send("POST", "/v1/generate", key=key, json=failing))[0] >= 400
        assert (
            await run.send(
                "POST",
                "/v1/chat/completions",
                key=key,
                json={**CHAT, "messages": [{"role": "user", "content": "[[emulator:status=403]]"}]},
            )
        )[0] >= 400

        # And a webhook endpoint (its secret shown once) gets a job's delivery
        status, endpoint = await run.send(
            "POST", "/v1/webhooks", key=key, json={"url": receiver.url}, record=False
        )
        assert status == 201, endpoint
        secrets.add(endpoint["secret"])
        status, tenant_secret = await run.send("GET", "/v1/webhook-secret", key=key, record=False)
        assert status == 200, tenant_secret
        secrets |= {
            v for v in tenant_secret.values() if isinstance(v, str) and v.startswith("whsec_")
        }
        status, accepted = await run.send(
            "POST",
            "/v1/jobs",
            key=key,
            json={**ASK, "prompt": "job", "webhook": {"url": receiver.url}},
        )
        assert status == 202, accepted
        job_id = accepted["id"]
        done = await run.send("GET", f"/v1/jobs/{job_id}?wait=20", key=key)
        assert done[1]["state"] == "succeeded", done
        deliveries = await receiver.wait_for(2, timeout_s=15)
        await poll(
            lambda: run.send("GET", f"/v1/jobs/{job_id}", key=key),
            lambda reply: bool(reply[1].get("webhook_attempts")),
            timeout_s=10,
            what="the job's webhook attempts",
        )
        # And /metrics is read
        status, metrics = await run.send("GET", "/metrics", key=ADMIN_KEY)
        assert status == 200
        assert "promptbus_" in metrics
        memory.spans()  # flushed
        spans = memory.exporter.get_finished_spans()

    # And the CLI lists keys and tenants on the same database
    written.append(await _cli(tmp_path, "keys", "list", "--tenant", "acme"))
    written.append(await _cli(tmp_path, "tenants", "list"))

    # Then none of the secrets, in any obvious encoding, is in anything that was written
    written += run.texts
    written += capfd.readouterr()  # this process's own stdout and stderr
    written += [repr(line) for line in logs]
    written += [f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records]
    for span in spans:
        events = [(e.name, dict(e.attributes or {})) for e in span.events]
        written.append(
            f"{span.name} {dict(span.attributes or {})!r} {span.status.description!r} "
            f"{events!r} {dict(span.resource.attributes)!r}"
        )
    written += [f"{d.path} {d.headers!r} {d.body.decode('utf-8', 'replace')}" for d in deliveries]
    # (and there was something to scan)
    assert len(logs) > 10
    assert len(spans) > 10
    assert len(run.texts) > 20
    found = sorted(
        {
            (secret[:10], form[:16], text[max(0, text.find(form) - 80) : text.find(form) + 40])
            for secret in secrets
            for form in encodings(secret)
            for text in written
            if form in text
        }
    )
    assert found == []
