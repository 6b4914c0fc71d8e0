"""Prompt templates end to end: sync, jobs and bus events render them, key them, refuse bad ones."""

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from pipeline.errors import InvalidConfig
from pipeline.settings import Settings
from tests.support.bus_tap import BusTap
from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.job_env import JobEnv, job_env
from tests.support.unique import new_id

QUIET_S = 0.5

GREET = """
[[versions]]
version = 1
description = "Greet someone."
messages = [
  { role = "system", content = "You are {mood}." },
  { role = "user", content = "Version one greets {name}." },
]

[[versions]]
version = 2
description = "Greet someone, loudly or not, after an example."
messages = [
  { role = "system", content = "You are {mood}." },
  { role = "user", content = "Greet Bo." },
  { role = "assistant", content = "Hello, Bo!" },
  { role = "user", content = "Version two greets {name} loudly={loud}." },
]
"""

FAREWELL = """
[[versions]]
version = 3
description = "Say goodbye."
messages = [{ role = "user", content = "Goodbye, {name}." }]
"""


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped config, with this test's own templates in place of the shipped ones."""
    directory = tmp_path_factory.mktemp("promptbus") / "config"
    shutil.copytree(Settings().config_dir, directory)
    shutil.rmtree(directory / "templates", ignore_errors=True)
    (directory / "templates").mkdir()
    (directory / "templates" / "greet.toml").write_text(GREET)
    (directory / "templates" / "farewell.toml").write_text(FAREWELL)
    return directory


def greet(variables: dict[str, Any], version: int | None = None, **extra: Any) -> dict[str, Any]:
    """A request naming the greet template."""
    template: dict[str, Any] = {"id": "greet", "variables": variables}
    if version is not None:
        template["version"] = version
    return {"model": "flash", "template": template, **extra}


ADA = {"mood": "cheerful", "name": "Ada", "loud": True}


async def test_a_template_request_renders_the_newest_version_then_hits_the_cache(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir)

    # When a template request names no version
    first = await gateway.generate(greet(ADA))

    # Then the newest version is rendered and sent upstream: the emulator echoes its last turn
    assert first.status == 200, first.body
    assert "Version two greets Ada loudly=true." in first.body["text"]
    assert first.header("X-Cache") == "MISS"
    assert first.body["cache"]["hit"] is False
    assert first.body["cache"]["stored"] is True

    # When the same template and variables come again, in another order, or with the version
    # the first one was pinned to
    reordered = await gateway.generate(greet({"loud": True, "name": "Ada", "mood": "cheerful"}))
    pinned = await gateway.generate(greet(ADA, version=2))

    # Then both are hits on the first answer, and only one call went upstream
    for reply in (reordered, pinned):
        assert reply.status == 200, reply.body
        assert reply.header("X-Cache") == "HIT"
        assert reply.body["cache"]["hit"] is True
        assert reply.body["cache"]["tier"] == "l1"
        assert reply.body["cache"]["key"] == first.body["cache"]["key"]
        assert reply.body["text"] == first.body["text"]
    assert await emulator.calls() == 1


async def test_another_version_or_other_variables_miss_the_cache(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir)
    newest = await gateway.generate(greet(ADA))

    # When an older version is pinned, or the variables differ
    older = await gateway.generate(greet({"mood": "cheerful", "name": "Ada"}, version=1))
    other_name = await gateway.generate(greet({**ADA, "name": "Grace"}))
    other_bool = await gateway.generate(greet({**ADA, "loud": False}))

    # Then each is a miss rendered from what it asked for, under a key of its own
    assert "Version one greets Ada." in older.body["text"]
    assert "Version two greets Grace loudly=true." in other_name.body["text"]
    assert "Version two greets Ada loudly=false." in other_bool.body["text"]
    replies = (newest, older, other_name, other_bool)
    assert [r.header("X-Cache") for r in replies] == ["MISS"] * 4
    assert len({r.body["cache"]["key"] for r in replies}) == 4
    assert await emulator.calls() == 4

    # And the same conversation sent as plain messages is not the template's entry either
    plain = await gateway.generate(
        {
            "model": "flash",
            "messages": [
                {"role": "system", "content": "You are cheerful."},
                {"role": "user", "content": "Version one greets Ada."},
            ],
        }
    )
    assert plain.header("X-Cache") == "MISS"
    assert plain.body["text"] == older.body["text"]  # the same words went upstream


async def test_bad_template_requests_are_refused_and_change_nothing(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir)
    cases = {
        "missing": (greet({"mood": "calm", "loud": True}), 422, "template.variables.name"),
        "extra": (greet({**ADA, "shout": "yes"}), 422, "template.variables.shout"),
        "unknown id": (
            {"model": "flash", "template": {"id": "nope", "variables": {}}},
            404,
            "template.id",
        ),
        "unknown version": (greet(ADA, version=7), 404, "template.version"),
    }

    # When template requests are wrong
    replies = {case: await gateway.generate(body) for case, (body, _, _) in cases.items()}

    # Then each is refused, saying what is wrong
    for case, (_, status, field) in cases.items():
        reply = replies[case]
        assert reply.status == status, (case, reply.body)
        assert reply.body["error"]["field"] == field, case
        expected = "validation_error" if status == 422 else "unknown_template"
        assert reply.body["error"]["type"] == expected, case
    assert "'name'" in replies["missing"].body["error"]["message"]
    assert "'shout'" in replies["extra"].body["error"]["message"]

    # And nothing went upstream and nothing was stored
    assert await emulator.calls() == 0
    assert gateway.services.l1.stats()["entries"] == 0


async def test_the_template_list_shows_every_version_and_its_variables(
    start_gateway: GatewayFactory, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir)

    everything = await gateway.get("/v1/templates")
    one = await gateway.get("/v1/templates/greet")
    unknown = await gateway.get("/v1/templates/nope")

    assert everything.status == 200
    rows = [(t["id"], t["version"], t["variables"]) for t in everything.body["data"]]
    assert rows == [
        ("farewell", 3, ["name"]),
        ("greet", 1, ["mood", "name"]),
        ("greet", 2, ["loud", "mood", "name"]),
    ]
    assert everything.body["data"][0]["description"] == "Say goodbye."
    assert one.status == 200
    assert [t["version"] for t in one.body["data"]] == [1, 2]
    assert unknown.status == 404
    assert unknown.body["error"]["type"] == "unknown_template"


async def test_the_shipped_templates_are_listed(gateway: Gateway) -> None:
    reply = await gateway.get("/v1/templates")

    assert reply.status == 200
    listed = {(t["id"], t["version"]) for t in reply.body["data"]}
    assert {("summarize", 1), ("summarize", 2), ("classify", 1)} <= listed


async def test_a_bad_template_file_stops_start_up_naming_the_file(
    start_gateway: GatewayFactory, config_dir: Path, tmp_path: Path
) -> None:
    # Given a config whose template uses attribute access in a placeholder
    broken = tmp_path / "config"
    shutil.copytree(config_dir, broken)
    bad = broken / "templates" / "leaky.toml"
    bad.write_text(
        '[[versions]]\nversion = 1\ndescription = "d"\n'
        'messages = [{ role = "user", content = "{name.__class__}" }]\n'
    )

    # When a gateway starts on it, then start-up fails, naming the file
    with pytest.raises(InvalidConfig, match=str(bad)):
        await start_gateway(config_dir=broken)


# Jobs and bus events: one gateway with its embedded worker on the in-process broker.


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(config_dir: Path) -> AsyncIterator[JobEnv]:
    async with job_env("memory", config_dir=config_dir) as running:
        yield running


@pytest.mark.asyncio(loop_scope="module")
async def test_a_template_job_carries_the_expanded_request(env: JobEnv) -> None:
    name = new_id("Ada")
    key = {"Idempotency-Key": new_id("key")}
    async with BusTap.requests(env.bus) as requests, BusTap.completions(env.bus) as completions:
        # When a job names the template without a version
        accepted = await env.submit(greet({**ADA, "name": name}), key)

        # Then the job's request holds the rendered messages and the pinned version
        assert accepted.status == 202, accepted.body
        job_id = accepted.body["id"]
        request = accepted.body["request"]
        assert request["template"]["version"] == 2
        assert request["template"]["variables"] == {**ADA, "name": name}
        assert request["messages"][-1] == {
            "role": "user",
            "content": f"Version two greets {name} loudly=true.",
        }
        assert [m["role"] for m in request["messages"]] == ["system", "user", "assistant", "user"]

        # And so does the event on the bus, and the answer is the rendered prompt's
        published = await requests.wait_for(job_id=job_id)
        assert published.body["request"] == request
        done = await completions.wait_for(job_id=job_id)
        assert done.body["state"] == "succeeded", done.body
        assert f"Version two greets {name} loudly=true." in done.body["result"]["text"]

        # When the same job is sent again under the same key, naming the version it was pinned to
        again = await env.submit(greet({**ADA, "name": name}, version=2), key)

        # Then it is the same job: the key is bound to the expanded request
        assert again.status == 202, again.body
        assert again.body["id"] == job_id
        await asyncio.sleep(QUIET_S)
        assert len(requests.for_job(job_id)) == 1

    # And the sync path finds the job's answer under the same key
    sync = await env.gateway.generate(greet({**ADA, "name": name}))
    assert sync.header("X-Cache") == "HIT"
    assert sync.body["text"] == done.body["result"]["text"]


@pytest.mark.asyncio(loop_scope="module")
async def test_a_bad_template_job_is_refused_with_nothing_queued(env: JobEnv) -> None:
    key = {"Idempotency-Key": new_id("key")}
    async with BusTap.requests(env.bus) as requests:
        calls_before = await env.emulator.calls()
        jobs_before = (await env.get("/v1/jobs?limit=100")).body["data"]

        # When jobs name a missing variable or an unknown version
        missing = await env.submit(greet({"mood": "calm", "loud": 1}), key)
        unknown = await env.submit(greet(ADA, version=9), key)

        # Then they are refused, saying why
        assert missing.status == 422, missing.body
        assert missing.body["error"]["field"] == "template.variables.name"
        assert "'name'" in missing.body["error"]["message"]
        assert unknown.status == 404, unknown.body
        assert unknown.body["error"]["type"] == "unknown_template"

        # And nothing was queued, recorded or sent upstream
        await asyncio.sleep(QUIET_S)
        assert requests.deliveries == []
        assert (await env.get("/v1/jobs?limit=100")).body["data"] == jobs_before
        assert await env.emulator.calls() == calls_before

    # And the idempotency key was not spent: a good body under it is accepted
    good = await env.submit(greet({**ADA, "name": new_id("Key")}), key)
    assert good.status == 202, good.body


@pytest.mark.asyncio(loop_scope="module")
async def test_template_events_from_the_bus_are_expanded_or_dead_lettered(env: JobEnv) -> None:
    good_id, bad_id = new_id("tpl-good"), new_id("tpl-bad")
    name = new_id("Bus")
    good = {
        "schema": "promptbus.request/v1",
        "job_id": good_id,
        "request": {"model": "flash", "template": {"id": "farewell", "variables": {"name": name}}},
    }
    bad = {**good, "job_id": bad_id, "request": greet({"mood": "calm", "name": "x"})}
    tags = {"good": new_id("good"), "bad": new_id("bad")}
    async with BusTap.dead_letters(env.bus) as dlq, BusTap.completions(env.bus) as completions:
        # When an upstream publisher sends a template request, and one missing a variable
        await asyncio.to_thread(
            env.bus.publish_raw, json.dumps(good).encode(), test_id=tags["good"]
        )
        await asyncio.to_thread(env.bus.publish_raw, json.dumps(bad).encode(), test_id=tags["bad"])

        # Then the good one runs the rendered prompt, and its job shows the expansion
        succeeded = await completions.wait_for(job_id=good_id)
        assert succeeded.body["state"] == "succeeded", succeeded.body
        assert f"Goodbye, {name}." in succeeded.body["result"]["text"]
        job = (await env.wait_job(good_id)).body
        assert job["request"]["template"]["version"] == 3
        assert job["request"]["messages"] == [{"role": "user", "content": f"Goodbye, {name}."}]

        # And the bad one is dead-lettered with the error as its reason, and its job fails
        dead = await dlq.wait_for(test_id=tags["bad"])
        assert str(dead.reason).startswith("invalid event")
        assert "'loud'" in str(dead.reason)
        failed = await completions.wait_for(job_id=bad_id)
        assert failed.body["error"]["type"] == "invalid_event"
        assert failed.body["error"]["message"] == dead.reason
        assert (await env.get(f"/v1/jobs/{bad_id}")).status == 404
