"""Provider batches (`"mode": "provider"`): Gemini's own Batch API behind the same Batches
API, driven by the official `openai` SDK, against the emulator's batch endpoints."""

import json

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from pipeline.catalog import ModelCatalog
from pipeline.db.tables import UsageRecord
from pipeline.emulator import EmulatorConfig, RunningEmulator
from schemas import Usage
from tests.e2e.test_batches_openai import chat_line, finished, lines_of
from tests.support.emulator import read_stats, running
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.polling import poll
from tests.support.provider_batches import (
    FAST_POLL,
    PROVIDER,
    gemini_jobs,
    sdk,
    submit_file,
)
from tests.support.settings import settings_for_test


@pytest.fixture
async def gateway(start_gateway: GatewayFactory, batch_emulator: RunningEmulator) -> Gateway:
    return await start_gateway(
        embedded_worker=True, gemini_base_url=batch_emulator.base_url, **FAST_POLL
    )


async def usage_of(gateway: Gateway, batch_id: str, count: int) -> list[UsageRecord]:
    sessions = async_sessionmaker(gateway.services.database)

    async def recorded() -> list[UsageRecord]:
        async with sessions() as session:
            query = select(UsageRecord).where(UsageRecord.job_id == batch_id)
            return list((await session.execute(query)).scalars())

    return await poll(recorded, lambda r: len(r) == count, timeout_s=20, what="usage records")


async def test_a_file_batch_runs_as_one_gemini_batch_job_at_the_batch_price(
    start_gateway: GatewayFactory,
    batch_emulator: RunningEmulator,
    batch_jobs: aiohttp.ClientSession,
):
    # Given a gateway that sends every provider batch to Gemini as an uploaded file, and an
    # input file of three chat requests for a Gemini model, one of which Gemini fails
    gateway = await start_gateway(
        embedded_worker=True,
        gemini_base_url=batch_emulator.base_url,
        gemini_batch_inline_max_bytes=0,
        **FAST_POLL,
    )
    lines = [
        chat_line("r0", "question zero", model="flash"),
        chat_line("r1", "question one", model="gemini-2.5-flash"),
        chat_line("r2", "busy [[emulator:status=503]]", model="flash"),
    ]
    async with sdk(gateway) as client:
        # When the openai SDK creates it in provider mode and polls it
        batch = await submit_file(client, lines, metadata={"run": "nightly"})
        assert batch.status == "in_progress"
        done = await finished(client, batch.id)

        # Then it completed with each custom_id once, answers in the output file and the
        # failed item in the error file with its status
        assert done.status == "completed", done.errors
        assert done.metadata == {"run": "nightly"}
        assert done.model_extra is not None
        assert done.model_extra["mode"] == "provider"
        assert done.request_counts is not None
        counts = done.request_counts
        assert (counts.total, counts.completed, counts.failed) == (3, 2, 1)
        assert done.output_file_id is not None
        assert done.error_file_id is not None
        output = lines_of((await client.files.content(done.output_file_id)).content)
        errors = lines_of((await client.files.content(done.error_file_id)).content)
    assert sorted(line["custom_id"] for line in output) == ["r0", "r1"]
    for line in output:
        body = line["response"]["body"]
        assert (line["response"]["status_code"], body["object"]) == (200, "chat.completion")
        assert body["choices"][0]["message"]["content"].startswith("[gemini-2.5-flash]")
    assert [line["custom_id"] for line in errors] == ["r2"]
    assert errors[0]["response"]["status_code"] >= 500

    # And Gemini got one batch job, from an uploaded file, and answered each item once
    made = await gemini_jobs(batch_jobs)
    assert len(made) == 1
    assert made[0]["metadata"]["displayName"] == batch.id
    assert "responsesFile" in made[0]["metadata"]["output"]
    assert (await read_stats(batch_jobs))["calls"] == 3

    # And each item left one usage record under the batch's id, the answers at the batch price
    records = await usage_of(gateway, batch.id, 3)
    spec = ModelCatalog.from_file(settings_for_test().models_file).resolve("flash")
    by_status = sorted(records, key=lambda r: r.status)
    assert [r.status for r in by_status] == ["error", "ok", "ok"]
    for record in by_status[1:]:
        usage = Usage(
            input_tokens=record.input_tokens,
            output_tokens=record.output_tokens,
            total_tokens=record.input_tokens + record.output_tokens,
        )
        assert record.cost_usd == pytest.approx(spec.batch_cost(usage).total_usd)
        assert record.cost_usd == pytest.approx(spec.cost(usage).total_usd / 2)
        assert record.surface == "batch"


async def test_an_inline_provider_batch_answers_in_promptbus_shape(
    gateway: Gateway, batch_jobs: aiohttp.ClientSession
):
    requests = [
        {"custom_id": "a", "body": {"model": "flash", "prompt": "one", "system": "be brief"}},
        {"custom_id": "b", "body": {"model": "flash", "prompt": "two"}},
    ]
    body = {"endpoint": "/v1/generate", "completion_window": "24h", "requests": requests}
    created = await gateway.post_raw("/v1/batches", json.dumps({**body, **PROVIDER}))
    assert created.status == 200, created.body
    assert created.body["mode"] == "provider"
    async with sdk(gateway) as client:
        done = await finished(client, created.body["id"])
        assert done.status == "completed", done.errors
        assert done.output_file_id is not None
        output = lines_of((await client.files.content(done.output_file_id)).content)
    answers = {line["custom_id"]: line["response"]["body"] for line in output}
    assert sorted(answers) == ["a", "b"]
    for answer in answers.values():
        assert answer["text"].startswith("[gemini-2.5-flash]")
        assert answer["cache"]["hit"] is False
        assert answer["cost"]["total_usd"] > 0
    # The requests went inline, answered inline
    (job,) = await gemini_jobs(batch_jobs)
    assert "inlinedResponses" in job["metadata"]["output"]


async def test_a_cancel_cancels_the_gemini_job_and_every_item_ends_batch_cancelled(
    start_gateway: GatewayFactory,
):
    # Given a provider batch whose Gemini job takes a minute
    async with running(EmulatorConfig(batch_step_ms=60_000)) as slow:
        gateway = await start_gateway(
            embedded_worker=True, gemini_base_url=slow.base_url, **FAST_POLL
        )
        async with aiohttp.ClientSession(base_url=slow.base_url) as jobs:
            lines = [chat_line(f"c{i}", f"slow {i}", model="flash") for i in range(3)]
            async with sdk(gateway) as client:
                batch = await submit_file(client, lines)
                await poll(lambda: gemini_jobs(jobs), bool, timeout_s=20, what="the job submitted")

                # When it is cancelled through the SDK
                cancelling = await client.batches.cancel(batch.id)
                assert cancelling.status in ("cancelling", "cancelled")
                done = await finished(client, batch.id)

                # Then it is cancelled, each item with a batch_cancelled line
                assert done.status == "cancelled"
                assert done.request_counts is not None
                assert (done.request_counts.completed, done.request_counts.failed) == (0, 3)
                assert done.output_file_id is None
                assert done.error_file_id is not None
                errors = lines_of((await client.files.content(done.error_file_id)).content)
            assert sorted(line["custom_id"] for line in errors) == ["c0", "c1", "c2"]
            assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}

            # And Gemini's job was cancelled, having answered nothing
            (job,) = await gemini_jobs(jobs)
            assert job["metadata"]["state"] == "BATCH_STATE_CANCELLED"
            assert (await read_stats(jobs))["calls"] == 0


@pytest.mark.parametrize(
    ("end", "status", "code"),
    [("failed", "failed", "batch_failed"), ("expired", "expired", "batch_expired")],
)
async def test_a_gemini_job_that_fails_or_expires_ends_the_batch_so(
    gateway: Gateway, end: str, status: str, code: str
):
    # Given a provider batch whose Gemini job will fail (or expire) as a whole
    lines = [
        chat_line("x", "fine", model="flash"),
        chat_line("y", f"doomed [[emulator:batch={end}]]", model="flash"),
    ]
    async with sdk(gateway) as client:
        batch = await submit_file(client, lines)

        # When it ends, Then the batch ends so, every item failed with one error line each
        done = await finished(client, batch.id)
        assert done.status == status
        assert done.request_counts is not None
        assert (done.request_counts.completed, done.request_counts.failed) == (0, 2)
        if status == "failed":
            assert done.errors is not None
            assert done.errors.data[0].code == "provider_failed"
            assert done.failed_at is not None
        assert done.error_file_id is not None
        errors = lines_of((await client.files.content(done.error_file_id)).content)
    assert sorted(line["custom_id"] for line in errors) == ["x", "y"]
    assert {line["error"]["code"] for line in errors} == {code}


async def test_a_non_gemini_line_fails_the_provider_batch_naming_it_and_sends_nothing(
    gateway: Gateway, batch_jobs: aiohttp.ClientSession
):
    lines = [
        chat_line("g", "hi", model="flash"),
        chat_line("o", "hi", model="gpt-4o-mini"),
        chat_line("p", "hi", model="pro"),
    ]
    async with sdk(gateway) as client:
        batch = await submit_file(client, lines)
    assert batch.status == "failed"
    assert batch.errors is not None
    found = [(e.code, e.line, e.param) for e in batch.errors.data]
    assert found == [
        ("unsupported_model", 2, "body.model"),
        ("mixed_models", 3, "body.model"),
    ]
    assert "gpt-4o-mini" in (batch.errors.data[0].message or "")
    assert await gemini_jobs(batch_jobs) == []
    # And a caller's metadata may not take promptbus's key for the provider's state
    body = {"endpoint": "/v1/generate", "completion_window": "24h", **PROVIDER}
    body["requests"] = [{"custom_id": "a", "body": {"model": "flash", "prompt": "x"}}]
    body["metadata"] = {"promptbus.provider": "mine"}
    reply = await gateway.post_raw("/v1/batches", json.dumps(body))
    assert reply.status == 400
