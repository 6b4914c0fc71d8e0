"""Chains as jobs, on each broker: each step a Celery task, its state in the job's record,
its SSE and `chain.step` events; the job ends like any other, its result the chain's output."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest
import pytest_asyncio

from schemas.chains import ChainStepEvent
from schemas.export import JSON_DIR
from tests.support.bus import BROKERS
from tests.support.bus_tap import BusTap, Delivery
from tests.support.job_env import JobEnv, job_env
from tests.support.settings import TEST_WEBHOOK_SECRET
from tests.support.tenants import ADMIN_KEY, bearer, tenant_with_key
from tests.support.unique import new_id
from tests.support.webhook_flows import FAST, finished, settled, webhook_env
from tests.support.webhook_receivers import receiving

pytestmark = pytest.mark.asyncio(loop_scope="module")

QUIET_S = 0.5
STEP_SCHEMA = json.loads((JSON_DIR / "chain_step.json").read_text())


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BROKERS)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[JobEnv]:
    """One gateway with its embedded worker per broker, shared by this module's tests."""
    async with job_env(request.param) as running:
        yield running


def chain_job(chain: str, variables: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"chain": {"id": chain, "variables": variables}, **extra}


def steps_of(deliveries: list[Delivery]) -> list[tuple[str, str]]:
    """(step, state) of each `chain.step` event, in the order they came."""
    return [(d.body["step"], d.body["state"]) for d in deliveries if d.routing_key == "chain.step"]


async def test_a_map_reduce_chain_runs_as_a_job_with_each_steps_state_and_events(
    env: JobEnv,
) -> None:
    # Given a document of three sections and a tap on completions and chain.step events
    parts = [f"Section {n}. " + " ".join(f"{new_id('f')}{i}" for i in range(300)) for n in range(3)]
    document = "\n\n".join(parts)
    async with BusTap.completions(env.bus) as tap, BusTap.completions(env.bus, "chain.step") as st:
        # When the map-reduce summary runs as a job
        accepted = await env.submit(chain_job("summarize_long", {"document": document}))
        assert accepted.status == 202, accepted.body
        job_id = accepted.body["id"]
        assert [s["state"] for s in accepted.body["chain"]["steps"]] == ["pending"] * 5
        done = await env.wait_job(job_id)

        # Then it succeeds, its result the chain's output, and every step succeeded
        assert done.body["state"] == "succeeded", done.body
        run = done.body["chain"]
        assert done.body["result"]["text"] == run["output"]
        assert done.body["result"]["model"] == "chain:summarize_long"
        states = {s["name"]: s["state"] for s in run["steps"]}
        assert states == dict.fromkeys(
            ["chunks", "chunk_summary", "partials", "combined", "summary"], "succeeded"
        ) | {"chunk_summary": "skipped"}
        (partials,) = [s for s in run["steps"] if s["name"] == "partials"]
        chunks = len(run["values"]["chunks"])
        assert chunks >= 3
        assert (partials["items"], partials["items_done"]) == (chunks, chunks)
        assert len(run["values"]["partials"]) == chunks
        # one call a chunk and one to combine them, each accounted for in the result
        assert [c["step"] for c in run["calls"]].count("chunk_summary") == chunks
        assert done.body["result"]["metadata"]["usage"]["calls"] == chunks + 1

        # And one completion event, after each step's running and succeeded events, in order
        completed = await tap.wait_for(job_id=job_id, state="succeeded")
        assert completed.body["result"]["text"] == run["output"]
        await asyncio.sleep(QUIET_S)
        assert len(tap.for_job(job_id)) == 1
        mine = st.for_job(job_id)
        assert steps_of(mine) == [
            (step, state)
            for step in ("chunks", "partials", "combined", "summary")
            for state in ("running", "succeeded")
        ]
        for delivery in mine:  # each as the committed schema says, which publishers code against
            jsonschema.validate(delivery.body, STEP_SCHEMA)
            ChainStepEvent.model_validate(delivery.body)


async def test_the_job_sse_shows_each_steps_state_as_it_changes(env: JobEnv) -> None:
    # Given a classify-then-route job whose classifier takes a moment
    message = f"{new_id('sse')} I was charged twice [[emulator:say=billing]] [[emulator:delay=300]]"
    accepted = await env.submit(chain_job("classify_route", {"message": message}))
    job_id = accepted.body["id"]

    # When its events are read to the end
    async with env.session.get(f"{env.gateway.url}/v1/jobs/{job_id}/events") as resp:
        raw = (await resp.read()).decode()

    # Then the states seen move each step on in order, and end with the job's final state
    seen: list[dict[str, str]] = []
    for block in raw.split("\n\n"):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if data:
            job = json.loads(data[0])
            seen.append({s["name"]: s["state"] for s in job["chain"]["steps"]})
    assert seen[-1]["label"] == "succeeded"
    assert seen[-1]["billing_answer"] == "succeeded"
    assert seen[-1]["technical_answer"] == seen[-1]["general_answer"] == "skipped"
    labels = [states["label"] for states in seen]
    assert "running" in labels
    assert labels.index("running") < labels.index("succeeded")
    # the branch's route only ran once the classifier was done
    assert all(s["label"] == "succeeded" for s in seen if s["billing_answer"] != "pending")


async def test_a_failed_step_fails_the_job_naming_the_step(env: JobEnv) -> None:
    async with BusTap.completions(env.bus) as tap, BusTap.completions(env.bus, "chain.step") as st:
        # When the classifier's model call is refused upstream (a 400 is not retried)
        message = f"{new_id('bad')} [[emulator:status=400]]"
        accepted = await env.submit(chain_job("classify_route", {"message": message}))
        job_id = accepted.body["id"]
        done = await env.wait_job(job_id)

        # Then the job failed, its error naming the step, and the step shows it
        assert done.body["state"] == "failed", done.body
        assert done.body["error"]["message"].startswith("step 'label': "), done.body["error"]
        (label,) = [s for s in done.body["chain"]["steps"] if s["name"] == "label"]
        assert label["state"] == "failed"
        assert label["error"]["type"] == done.body["error"]["type"]
        failed = await tap.wait_for(job_id=job_id, state="failed")
        assert failed.routing_key == "completion.failed"
        assert failed.body["error"]["message"] == done.body["error"]["message"]
        await asyncio.sleep(QUIET_S)
        assert len(tap.for_job(job_id)) == 1
        assert steps_of(st.for_job(job_id)) == [("label", "running"), ("label", "failed")]


@pytest.mark.parametrize(
    ("chain", "status", "error", "field"),
    [
        ({"id": "nope", "variables": {}}, 404, "unknown_chain", "id"),
        ({"id": "classify_route", "version": 9, "variables": {}}, 404, "unknown_chain", "version"),
        ({"id": "classify_route", "variables": {}}, 422, "validation_error", "variables.message"),
        (
            {"id": "classify_route", "variables": {"message": "hi", "extra": 1}},
            422,
            "validation_error",
            "variables.extra",
        ),
        ({"id": "Bad Id!", "variables": {}}, 422, "validation_error", None),
    ],
)
async def test_a_bad_chain_job_is_refused_at_submit_and_nothing_is_queued(
    env: JobEnv, chain: dict[str, Any], status: int, error: str, field: str | None
) -> None:
    before = await env.get("/v1/jobs?limit=100")
    calls = await env.emulator.calls()

    refused = await env.submit({"chain": chain})

    assert refused.status == status, refused.body
    assert refused.body["error"]["type"] == error
    if field is not None:
        assert refused.body["error"]["field"] == field
    after = await env.get("/v1/jobs?limit=100")
    assert after.body["data"] == before.body["data"]
    await asyncio.sleep(0.2)
    assert await env.emulator.calls() == calls


async def test_a_chain_jobs_webhook_gets_its_signed_completion_once() -> None:
    async with webhook_env("memory", **FAST) as env, receiving() as receiver:
        # Given a chain job with a webhook of its own
        message = f"{new_id('hook')} [[emulator:say=technical]]"
        body = chain_job("classify_route", {"message": message}, webhook={"url": receiver.url})
        accepted = await env.submit(body)
        assert accepted.status == 202, accepted.body
        job_id = accepted.body["id"]

        # Then one attempt delivered its completion, signed, with the chain's output
        found = await settled(env, job_id)
        assert [(a["attempt"], a["outcome"]) for a in found] == [(0, "delivered")]
        (request,) = receiver.received
        event = request.verify(TEST_WEBHOOK_SECRET)
        job = await finished(env, job_id)
        assert (event["job_id"], event["state"]) == (job_id, "succeeded")
        assert event["result"] == job["result"]
        assert event["result"]["json"] == job["chain"]["output"]
        assert job["chain"]["output"]["label"] == "technical"


async def test_a_chain_job_is_held_to_its_keys_models_and_rate_and_its_tenant() -> None:
    async with job_env("memory", admin_key=ADMIN_KEY) as env:
        # Given a key that may call only "pro", one allowed one request a minute, and another
        # tenant's key
        narrow, _ = await tenant_with_key(env.gateway, "acme", allowed_models=["pro"])
        slow, _ = await tenant_with_key(env.gateway, "acme", rpm=1)
        other, _ = await tenant_with_key(env.gateway, "beta")
        body = json.dumps(chain_job("classify_route", {"message": "hi [[emulator:say=x]]"}))

        # Then a chain calling "flash" is a 403 for the first, before anything is queued
        refused = await env.gateway.post_raw("/v1/jobs", body, bearer(narrow))
        assert refused.status == 403, refused.body
        # And the second gets one chain job a minute
        first = await env.gateway.post_raw("/v1/jobs", body, bearer(slow))
        again = await env.gateway.post_raw("/v1/jobs", body, bearer(slow))
        assert (first.status, again.status) == (202, 429), again.body
        # And the other tenant never sees the job, nor lists it
        job_id = first.body["id"]
        async with env.session.get(
            f"{env.gateway.url}/v1/jobs/{job_id}?wait=20", headers=bearer(slow)
        ) as resp:
            assert (await resp.json())["state"] == "succeeded"
        async with env.session.get(
            f"{env.gateway.url}/v1/jobs/{job_id}", headers=bearer(other)
        ) as resp:
            assert resp.status == 404
        async with env.session.get(f"{env.gateway.url}/v1/jobs", headers=bearer(other)) as resp:
            assert (await resp.json())["data"] == []


async def test_a_cancelled_chain_job_runs_no_further_step(env: JobEnv) -> None:
    # Given a chain job whose classifier takes a while upstream
    message = f"{new_id('cancel')} [[emulator:say=billing]] [[emulator:delay=400]]"
    accepted = await env.submit(chain_job("classify_route", {"message": message}))
    job_id = accepted.body["id"]
    calls = await env.emulator.calls()

    # When it is cancelled as it runs
    cancelled = await env.delete(f"/v1/jobs/{job_id}")

    # Then it ends cancelled, and its route's step never calls the model
    assert cancelled.status == 200, cancelled.body
    assert cancelled.body["state"] == "cancelled"
    await asyncio.sleep(1.0)
    assert await env.emulator.calls() <= calls + 1  # the classifier's call, at most
    done = await env.get(f"/v1/jobs/{job_id}")
    assert done.body["state"] == "cancelled"
    states = {s["name"]: s["state"] for s in done.body["chain"]["steps"]}
    assert states["billing_answer"] == "pending"
