"""Sessions on jobs and chains: a job's turn and a chain's input and output are kept in the
session, the history goes before a chain's first llm step only, tenants apart."""

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.support.job_env import JobEnv, job_env
from tests.support.tenants import ADMIN_KEY, bearer, tenant_with_key
from tests.support.unique import new_id

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env() -> AsyncIterator[JobEnv]:
    """A gateway with its embedded worker (memory broker)."""
    async with job_env("memory") as running:
        yield running


def said(kept: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in kept["messages"]]


async def test_a_job_is_a_turn_of_its_session(env: JobEnv) -> None:
    session = new_id("job-session")
    # Given a sync turn, then a job in the same session
    first = await env.gateway.generate(
        {"model": "flash", "prompt": "My name is Ada.", "session_id": session}
    )
    accepted = await env.submit(
        {"model": "flash", "prompt": "What is my name?", "session_id": session}
    )
    assert accepted.status == 202, accepted.body
    done = await env.wait_job(accepted.body["id"])
    assert done.body["state"] == "succeeded", done.body

    # Then the job was sent after the kept turn, and its own turn is kept after it
    assert done.body["request"]["messages"][0]["content"] == "My name is Ada."
    kept = await env.get(f"/v1/sessions/{session}")
    assert said(kept.body) == [
        ("user", "My name is Ada."),
        ("assistant", first.body["text"]),
        ("user", "What is my name?"),
        ("assistant", done.body["result"]["text"]),
    ]


async def test_a_failed_job_keeps_no_turn(env: JobEnv) -> None:
    session = new_id("job-fail")
    accepted = await env.submit(
        {"model": "flash", "prompt": "x [[emulator:status=400]]", "session_id": session}
    )
    done = await env.wait_job(accepted.body["id"])
    assert done.body["state"] == "failed"
    assert (await env.get(f"/v1/sessions/{session}")).status == 404


async def invoke(env: JobEnv, chain: str, body: dict[str, Any]) -> Any:
    reply = await env.gateway.post_raw(f"/v1/chains/{chain}/invoke", json.dumps(body))
    assert reply.status == 200, reply.body
    return reply.body


async def test_a_chain_invocation_keeps_its_input_and_output_and_sends_history_first(
    env: JobEnv,
) -> None:
    session = new_id("chain-session")
    message = f"{new_id('charged')} twice [[emulator:say=billing]]"
    body = {"variables": {"message": message}, "session_id": session}

    # When the same chain is invoked twice in one session
    first = await invoke(env, "classify_route", body)
    second = await invoke(env, "classify_route", body)

    # Then each invocation's input and output are a turn of the session
    kept = await env.get(f"/v1/sessions/{session}")
    output = json.dumps(first["output"], separators=(",", ":"))
    assert said(kept.body) == [("user", message), ("assistant", output)] * 2
    # And the history went to the first llm step (the classifier) alone: a longer prompt,
    # while the route's prompt was the same, so the cache answered it
    label_1, route_1 = first["calls"]
    label_2, route_2 = second["calls"]
    assert label_2["step"] == "label"
    assert label_2["input_tokens"] > label_1["input_tokens"]
    assert not label_2["cache_hit"]
    assert route_2["cache_hit"]
    assert route_2["input_tokens"] == route_1["input_tokens"]


async def test_a_chain_job_is_a_turn_of_its_session(env: JobEnv) -> None:
    session = new_id("chain-job-session")
    question = "What is 2+2? [[emulator:set=verdict:pass]]"
    chain = {"id": "plan_solve_verify", "variables": {"question": question}}
    jobs = []
    for _ in range(2):
        accepted = await env.submit({"chain": chain, "session_id": session})
        assert accepted.status == 202, accepted.body
        done = await env.wait_job(accepted.body["id"])
        assert done.body["state"] == "succeeded", done.body
        jobs.append(done.body)

    kept = await env.get(f"/v1/sessions/{session}")
    assert said(kept.body) == [
        ("user", question),
        ("assistant", jobs[0]["result"]["text"]),
        ("user", question),
        ("assistant", jobs[1]["result"]["text"]),
    ]
    # the second job's planner had the first turn before its own prompt
    plan_1 = jobs[0]["chain"]["calls"][0]
    plan_2 = jobs[1]["chain"]["calls"][0]
    assert plan_1["step"] == plan_2["step"] == "plan"
    assert plan_2["input_tokens"] > plan_1["input_tokens"]


async def test_tenants_never_see_each_others_chain_sessions_or_chain_jobs() -> None:
    # A gateway of its own: once it has tenants, every request needs a key
    async with job_env("memory", admin_key=ADMIN_KEY) as env:
        await _tenants_apart(env)


async def _tenants_apart(env: JobEnv) -> None:
    acme, _ = await tenant_with_key(env.gateway, "acme")
    beta, _ = await tenant_with_key(env.gateway, "beta")
    session = new_id("shared-name")
    chain = {"id": "classify_route", "variables": {"message": "acme secret [[emulator:say=x]]"}}

    accepted = await env.gateway.post_raw(
        "/v1/jobs", json.dumps({"chain": chain, "session_id": session}), bearer(acme)
    )
    assert accepted.status == 202, accepted.body
    job_id = accepted.body["id"]
    async with env.session.get(
        f"{env.gateway.url}/v1/jobs/{job_id}?wait=20", headers=bearer(acme)
    ) as resp:
        assert (await resp.json())["state"] == "succeeded"

    # Then the other tenant sees neither the job nor the session
    for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/events", f"/v1/sessions/{session}"):
        async with env.session.get(env.gateway.url + path, headers=bearer(beta)) as resp:
            assert resp.status == 404, path
    async with env.session.get(
        f"{env.gateway.url}/v1/sessions/{session}", headers=bearer(acme)
    ) as resp:
        assert (await resp.json())["messages"][0]["content"].startswith("acme secret")


async def test_a_streamed_invocation_refuses_a_session(env: JobEnv) -> None:
    body = {"variables": {"message": "hi"}, "session_id": "s", "stream": True}
    reply = await env.gateway.post_raw("/v1/chains/classify_route/invoke", json.dumps(body))
    assert reply.status == 422
    assert reply.body["error"]["field"] == "session_id"
