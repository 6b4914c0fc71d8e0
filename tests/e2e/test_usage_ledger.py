"""Every answered or failed request leaves exactly one usage record, on SQLite and PostgreSQL:
each API surface, cache hits and coalesced callers (what they saved), errors, jobs."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from schemas import RequestEvent
from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.genai_clients import genai_client
from tests.support.job_env import job_env
from tests.support.ledger import FLUSH_S, flushed, usage_rows
from tests.support.polling import poll
from tests.support.sse import read_stream
from tests.support.unique import new_id


@pytest.fixture
async def gateway(start_gateway: GatewayFactory, database_url: str) -> Gateway:
    return await start_gateway(database_url=database_url, ledger_flush_interval_s=0.05)


async def records(gateway: Gateway) -> list[dict[str, Any]]:
    """The ledger's rows once everything recorded so far is written."""
    await flushed(gateway.services.ledger)
    return await usage_rows(gateway.services.database)


async def test_a_generate_request_and_its_cache_hit_are_one_record_each(gateway: Gateway):
    # Given one request answered upstream, then the same request again
    body = {"model": "flash", "prompt": "how much was it?"}
    first = await gateway.generate(body)
    again = await gateway.generate(body)
    assert again.header("X-Cache") == "HIT"

    # Then two records: the miss paid, the hit cost nothing and saved what the miss paid
    miss, hit = await records(gateway)
    paid = first.body["cost"]["total_usd"]
    assert paid > 0
    assert miss["request_id"] == first.header("X-Request-Id")
    assert hit["request_id"] == again.header("X-Request-Id")
    assert miss["surface"] == hit["surface"] == "generate"
    assert (miss["tenant"], miss["key_id"], miss["status"]) == ("default", None, "ok")
    assert (miss["cache_tier"], miss["cost_usd"], miss["saved_usd"]) == (None, paid, 0.0)
    assert (hit["cache_tier"], hit["cost_usd"], hit["saved_usd"]) == ("l1", 0.0, paid)
    assert miss["input_tokens"] == first.body["usage"]["input_tokens"]
    assert miss["output_tokens"] == first.body["usage"]["output_tokens"]
    assert miss["model"] == "flash"
    assert miss["provider"] == first.body["provider"]
    assert miss["provider_model"] == first.body["provider_model"]
    assert miss["deployment"] == first.body["routing"]["deployment"]
    assert miss["latency_ms"] > 0
    assert not miss["streamed"]


async def test_a_template_request_is_recorded_with_its_pinned_version(gateway: Gateway):
    # No version named: the newest (2) is pinned on arrival, and recorded
    variables = {"text": "A cat sat.", "sentences": 1, "audience": "children"}
    template = {"id": "summarize", "variables": variables}
    body = {"model": "flash", "template": template}
    reply = await gateway.generate(body)
    assert reply.status == 200

    (row,) = await records(gateway)
    assert (row["template_id"], row["template_version"]) == ("summarize", "2")


async def test_a_streamed_answer_is_one_record_once_it_ended(gateway: Gateway):
    body = {"model": "flash", "prompt": "stream it, " * 20, "stream": True}
    stream = await read_stream(gateway.session, gateway.url + "/v1/generate", body)
    replay = await read_stream(gateway.session, gateway.url + "/v1/generate", body)
    done = stream.named("done")[0].data
    assert replay.headers["X-Cache"] == "HIT"

    live, hit = await records(gateway)
    assert live["request_id"] == stream.headers["X-Request-Id"]
    assert (live["streamed"], live["status"], live["cache_tier"]) == (True, "ok", None)
    assert live["output_tokens"] == done["usage"]["output_tokens"]
    assert live["cost_usd"] == done["cost"]["total_usd"]
    assert (hit["streamed"], hit["cache_tier"], hit["saved_usd"]) == (True, "l1", live["cost_usd"])


async def test_a_stream_that_broke_after_it_started_is_recorded_as_its_error(gateway: Gateway):
    body = {
        "model": "flash",
        "prompt": "break this answer into five pieces [[emulator:chunks=5,cut=2]]",
        "stream": True,
    }
    broken = await read_stream(gateway.session, gateway.url + "/v1/generate", body)
    assert [e.name for e in broken.events] == ["delta", "delta", "error"]

    (row,) = await records(gateway)
    assert row["request_id"] == broken.headers["X-Request-Id"]
    assert (row["streamed"], row["status"], row["error_type"]) == (
        True,
        "error",
        "stream_interrupted",
    )


async def test_coalesced_callers_each_have_a_record_that_saved_the_cost(gateway: Gateway):
    # Given five identical requests in flight at once over one slow upstream call
    body = {"model": "flash", "prompt": "together [[emulator:delay=300]]"}
    replies = await asyncio.gather(*(gateway.generate(body) for _ in range(5)))
    assert [r.status for r in replies] == [200] * 5

    # Then five records: one paid, the others saved what it paid
    rows = await records(gateway)
    assert sorted(r["request_id"] for r in rows) == sorted(
        r.header("X-Request-Id") for r in replies
    )
    paid = [r for r in rows if r["cache_tier"] is None]
    assert len(paid) == 1
    cost = paid[0]["cost_usd"]
    for row in rows:
        if row["cache_tier"] is not None:
            assert row["cache_tier"] in ("coalesced", "l1")
            assert (row["cost_usd"], row["saved_usd"]) == (0.0, cost)
    assert any(r["cache_tier"] == "coalesced" for r in rows)


async def test_a_failed_request_is_recorded_with_its_error_type(gateway: Gateway):
    reply = await gateway.generate({"model": "flash", "prompt": "x [[emulator:status=400]]"})
    assert reply.status == 502

    (row,) = await records(gateway)
    assert row["request_id"] == reply.header("X-Request-Id")
    assert (row["status"], row["error_type"]) == ("error", "upstream_rejected")
    assert (row["cost_usd"], row["output_tokens"]) == (0.0, 0)


async def test_chat_completions_through_the_openai_sdk_are_recorded(gateway: Gateway):
    sdk = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="any", max_retries=0)
    try:
        plain = await sdk.chat.completions.create(
            model="flash", messages=[{"role": "user", "content": "hello openai"}]
        )
        chunks = [
            chunk
            async for chunk in await sdk.chat.completions.create(
                model="flash",
                messages=[{"role": "user", "content": "hello stream"}],
                stream=True,
            )
        ]
    finally:
        await sdk.close()
    assert chunks

    first, streamed = await records(gateway)
    assert first["surface"] == streamed["surface"] == "chat"
    assert plain.usage is not None
    assert first["input_tokens"] == plain.usage.prompt_tokens
    assert first["output_tokens"] == plain.usage.completion_tokens
    assert (first["streamed"], streamed["streamed"]) == (False, True)
    assert streamed["status"] == "ok"


async def test_gemini_requests_through_google_genai_are_recorded(gateway: Gateway):
    async with genai_client(gateway.url, "v1beta") as client:
        answer = await client.aio.models.generate_content(model="flash", contents="hello gemini")
        pieces = [
            c
            async for c in await client.aio.models.generate_content_stream(
                model="flash", contents="hello gemini stream"
            )
        ]
    assert pieces

    plain, streamed = await records(gateway)
    assert plain["surface"] == streamed["surface"] == "gemini"
    assert answer.usage_metadata is not None
    assert plain["output_tokens"] == answer.usage_metadata.candidates_token_count
    assert (plain["streamed"], streamed["streamed"]) == (False, True)


async def test_a_bad_request_body_is_refused_before_it_is_a_request(gateway: Gateway):
    # A body that is not a request is a 4xx and changes nothing, the ledger included
    reply = await gateway.generate({"model": "flash"})
    assert reply.status == 422
    assert await records(gateway) == []


@pytest.fixture
async def jobs(database_url: str) -> AsyncIterator[Any]:
    async with job_env("memory", database_url=database_url, ledger_flush_interval_s=0.05) as env:
        yield env


async def test_a_job_is_recorded_once_when_it_finishes(jobs: Any):
    # Given a job that succeeds and one that fails
    ok = await jobs.submit({"model": "flash", "prompt": new_id("job")})
    bad = await jobs.submit({"model": "flash", "prompt": "x [[emulator:status=400]]"})
    done = await jobs.wait_job(ok.body["id"])
    failed = await jobs.wait_job(bad.body["id"])
    assert (done.body["state"], failed.body["state"]) == ("succeeded", "failed")

    # Then one record each, named by the job
    rows = await records(jobs.gateway)
    by_job = {r["job_id"]: r for r in rows}
    assert len(rows) == 2
    good = by_job[ok.body["id"]]
    assert (good["surface"], good["status"], good["request_id"]) == ("job", "ok", ok.body["id"])
    assert good["cost_usd"] == done.body["result"]["cost"]["total_usd"]
    assert good["output_tokens"] == done.body["result"]["usage"]["output_tokens"]
    assert by_job[bad.body["id"]]["status"] == "error"
    assert by_job[bad.body["id"]]["error_type"] == failed.body["error"]["type"]


async def test_a_cancelled_job_is_recorded_as_cancelled(jobs: Any):
    queued = await jobs.submit({"model": "flash", "prompt": "slow [[emulator:delay=3000]]"})
    job_id = queued.body["id"]
    assert (await jobs.delete(f"/v1/jobs/{job_id}")).status == 200

    rows = await poll(
        lambda: records(jobs.gateway), lambda r: len(r) == 1, timeout_s=FLUSH_S, what="a record"
    )
    assert (rows[0]["job_id"], rows[0]["status"], rows[0]["error_type"]) == (
        job_id,
        "cancelled",
        "cancelled",
    )


async def test_a_bus_event_is_recorded_for_the_tenant_it_names(jobs: Any):
    # Given a request event published straight onto the bus, for tenant "acme"
    job_id = new_id("bus")
    event = RequestEvent(job_id=job_id, tenant="acme", request={"model": "flash", "prompt": "hi"})
    await jobs.gateway.services.publisher.publish_request(event)
    await jobs.wait_job(job_id)

    # Then its record is the tenant's
    rows = await poll(
        lambda: records(jobs.gateway), lambda r: len(r) == 1, timeout_s=FLUSH_S, what="a record"
    )
    assert (rows[0]["job_id"], rows[0]["tenant"], rows[0]["status"]) == (job_id, "acme", "ok")


async def test_with_the_ledger_off_nothing_is_recorded(
    start_gateway: GatewayFactory, emulator: Emulator
):
    gateway = await start_gateway(ledger_enabled=False)
    assert (await gateway.generate({"model": "flash", "prompt": "off"})).status == 200
    assert gateway.services.ledger is None
    assert await usage_rows(gateway.services.database) == []


async def test_a_chain_invocation_records_each_call_with_its_chain_version_and_step(
    gateway: Gateway,
):
    # Given a chain invoked synchronously (classify, then the billing route)
    message = f"{new_id('charged')} [[emulator:say=billing]]"
    reply = await gateway.post_raw(
        "/v1/chains/classify_route/invoke", json.dumps({"variables": {"message": message}})
    )
    assert reply.status == 200, reply.body

    # Then one record a model call, each naming the chain, its version and the step
    rows = await records(gateway)
    assert [(r["surface"], r["chain_id"], r["chain_version"], r["chain_step"]) for r in rows] == [
        ("chain", "classify_route", 1, "label"),
        ("chain", "classify_route", 1, "billing_answer"),
    ]
    assert all(r["request_id"] == reply.body["id"] for r in rows)


async def test_a_chain_job_records_each_call_with_its_job_chain_and_step(jobs: Any):
    # Given a chain job (classify, then the technical route)
    chain = {
        "id": "classify_route",
        "variables": {"message": f"{new_id('c')} [[emulator:say=technical]]"},
    }
    accepted = await jobs.submit({"chain": chain})
    job_id = accepted.body["id"]
    done = await jobs.wait_job(job_id)
    assert done.body["state"] == "succeeded", done.body

    # Then one record a call, each naming the job, the chain and its step; none for the job
    rows = await poll(
        lambda: records(jobs.gateway), lambda r: len(r) == 2, timeout_s=FLUSH_S, what="records"
    )
    assert [
        (r["surface"], r["job_id"], r["chain_id"], r["chain_version"], r["chain_step"])
        for r in rows
    ] == [
        ("chain", job_id, "classify_route", 1, "label"),
        ("chain", job_id, "classify_route", 1, "technical_answer"),
    ]
    paid = sum(r["cost_usd"] for r in rows)
    assert round(paid, 9) == done.body["result"]["cost"]["total_usd"]
