"""Batches on the Celery workers: duplicates and cached answers call nothing, failed items
land in the error file, cancel and expiry end what did not run, tenants stay apart."""

import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import openai
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from pipeline.batches import BatchStore, NewItem
from pipeline.batches.ids import new_id
from pipeline.batches.store import utcnow
from pipeline.db.batch_tables import BatchRecord
from pipeline.db.tables import UsageRecord
from tests.e2e.test_batches_openai import FINAL, chat_line, finished, jsonl, lines_of
from tests.e2e.test_tenancy_isolation import two_tenants
from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.polling import poll
from tests.support.resilience import FAST, calls_by_model
from tests.support.tenants import bearer, call


def sdk(gateway: Gateway, key: str = "any") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


async def run_file(client: openai.AsyncOpenAI, content: bytes) -> Any:
    upload = await client.files.create(file=("in.jsonl", content), purpose="batch")
    return await client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


async def test_a_thousand_items_with_duplicates_call_upstream_once_per_unique_item(
    start_gateway: GatewayFactory, emulator: Emulator
):
    # Given a cached answer, and 1,000 items: 700 unique prompts (one of them the cached
    # one), 300 more repeating some of them, shuffled
    gateway = await start_gateway(embedded_worker=True, batch_slots=4)
    async with sdk(gateway) as client:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "prompt 0"}]
        )
        assert await emulator.calls() == 1
        rng = random.Random(15)
        prompts = [f"prompt {i}" for i in range(700)]
        prompts += [rng.choice(prompts) for _ in range(300)]
        rng.shuffle(prompts)
        lines = [chat_line(f"item-{n}", text) for n, text in enumerate(prompts)]

        # When they run as one batch
        done = await finished(client, (await run_file(client, jsonl(*lines))).id)

        # Then every item answered once, and upstream was called once per unique uncached one
        assert done.status == "completed", done.errors
        assert done.request_counts is not None
        assert (done.request_counts.completed, done.request_counts.failed) == (1000, 0)
        assert done.output_file_id is not None
        output = lines_of((await client.files.content(done.output_file_id)).content)
        assert sorted(line["custom_id"] for line in output) == sorted(
            f"item-{n}" for n in range(1000)
        )
        texts = {}
        for line in output:
            text = line["response"]["body"]["choices"][0]["message"]["content"]
            prompt = prompts[int(line["custom_id"].removeprefix("item-"))]
            assert texts.setdefault(prompt, text) == text
        assert await emulator.calls() == 700
    # and each item left a usage record under the batch's id
    sessions = async_sessionmaker(gateway.services.database)

    async def recorded() -> list[str | None]:
        async with sessions() as session:
            query = select(UsageRecord.job_id).where(UsageRecord.surface == "batch")
            return list((await session.execute(query)).scalars())

    records = await poll(recorded, lambda r: len(r) == 1000, timeout_s=20, what="usage records")
    assert set(records) == {done.id}


async def test_failed_items_go_to_the_error_file_with_their_status(
    start_gateway: GatewayFactory, emulator: Emulator
):
    gateway = await start_gateway(embedded_worker=True, retry_max_attempts=1)
    async with sdk(gateway) as client:
        lines = [chat_line("good", "fine"), chat_line("bad", "no [[emulator:status=400]]")]
        done = await finished(client, (await run_file(client, jsonl(*lines))).id)
        assert done.status == "completed"
        assert done.request_counts is not None
        assert (done.request_counts.completed, done.request_counts.failed) == (1, 1)
        assert done.output_file_id
        assert done.error_file_id
        output = lines_of((await client.files.content(done.output_file_id)).content)
        errors = lines_of((await client.files.content(done.error_file_id)).content)
        assert [line["custom_id"] for line in output] == ["good"]
        assert [line["custom_id"] for line in errors] == ["bad"]
        assert errors[0]["response"]["status_code"] >= 400
        assert errors[0]["response"]["body"]["error"]["message"]


async def test_cancel_keeps_finished_items_and_ends_the_rest_cancelled(
    start_gateway: GatewayFactory, emulator: Emulator
):
    # Given a batch whose items take a while, one lane of one item at a time
    gateway = await start_gateway(
        embedded_worker=True, batch_slots=1, batch_chunk_size=2, batch_item_concurrency=1
    )
    async with sdk(gateway) as client:
        lines = [chat_line(f"r{i}", f"slow {i} [[emulator:delay=300]]") for i in range(20)]
        batch = await run_file(client, jsonl(*lines))
        await poll(
            lambda: client.batches.retrieve(batch.id),
            lambda b: b.request_counts is not None and b.request_counts.completed >= 2,
            timeout_s=30,
            what="two items done",
        )

        # When it is cancelled
        cancelled = await client.batches.cancel(batch.id)

        # Then it ends cancelled: each item once, finished ones kept, the rest batch_cancelled
        assert cancelled.status in ("cancelling", "cancelled")
        done = await finished(client, batch.id)
        assert done.status == "cancelled"
        assert done.cancelled_at
        assert done.cancelling_at
        assert done.request_counts is not None
        kept = done.request_counts.completed
        assert 2 <= kept < 20
        assert kept + done.request_counts.failed == 20
        assert done.output_file_id
        assert done.error_file_id
        output = lines_of((await client.files.content(done.output_file_id)).content)
        errors = lines_of((await client.files.content(done.error_file_id)).content)
        ids = [line["custom_id"] for line in output + errors]
        assert sorted(ids) == sorted(f"r{i}" for i in range(20))
        assert len(output) == kept
        assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
        calls = await emulator.calls()
        assert calls <= kept + 1  # at most the one in flight when it was cancelled
        # and a finished batch cannot be cancelled again
        again = await client.batches.cancel(batch.id)
        assert again.status == "cancelled"


async def test_at_the_end_of_the_window_the_rest_expire(
    start_gateway: GatewayFactory, emulator: Emulator
):
    gateway = await start_gateway(
        embedded_worker=True,
        batch_slots=1,
        batch_chunk_size=1,
        batch_item_concurrency=1,
        batch_window_s=1.5,
        batch_sweep_interval_s=0.2,
    )
    async with sdk(gateway) as client:
        lines = [chat_line(f"r{i}", f"slow {i} [[emulator:delay=400]]") for i in range(30)]
        done = await finished(client, (await run_file(client, jsonl(*lines))).id)
        assert done.status == "expired"
        assert done.expired_at
        assert done.request_counts is not None
        assert 0 < done.request_counts.completed < 30
        assert done.request_counts.completed + done.request_counts.failed == 30
        assert done.error_file_id is not None
        errors = lines_of((await client.files.content(done.error_file_id)).content)
        assert {line["error"]["code"] for line in errors} == {"batch_expired"}
        assert len(errors) == done.request_counts.failed


async def test_a_tenant_never_sees_anothers_files_or_batches(start_gateway: GatewayFactory):
    gateway, acme, beta = await two_tenants(start_gateway, embedded_worker=True)
    async with sdk(gateway, acme) as client:
        batch = await run_file(client, jsonl(chat_line("x", "mine")))
        done = await finished(client, batch.id)
        assert done.status in FINAL
    for method, path in (
        ("GET", f"/v1/batches/{batch.id}"),
        ("POST", f"/v1/batches/{batch.id}/cancel"),
        ("GET", f"/v1/files/{batch.input_file_id}"),
        ("GET", f"/v1/files/{done.output_file_id}/content"),
        ("DELETE", f"/v1/files/{batch.input_file_id}"),
    ):
        reply = await call(gateway, method, path, key=beta)
        assert reply.status == 404, (method, path, reply.body)
    listed = await call(gateway, "GET", "/v1/batches", key=beta)
    assert listed.body["data"] == []
    body = {"input_file_id": batch.input_file_id, "endpoint": "/v1/chat/completions"}
    body["completion_window"] = "24h"
    async with gateway.session.post(
        gateway.url + "/v1/batches",
        data=json.dumps(body),
        headers={**bearer(beta), "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 404


async def test_a_batch_whose_lanes_were_lost_is_driven_again_by_the_sweeper(
    start_gateway: GatewayFactory, emulator: Emulator
):
    # Given a running batch whose lane tasks never reached the broker (an ingress that died
    # between storing it and queueing them)
    gateway = await start_gateway(
        embedded_worker=True, job_stall_s=0.5, batch_sweep_interval_s=0.2, batch_chunk_size=2
    )
    store = BatchStore(gateway.services.database, retention_s=3600)
    now = utcnow()
    record = BatchRecord(
        id=new_id("batch_"),
        tenant="default",
        key_id=None,
        mode="gateway",
        endpoint="/v1/generate",
        input_file_id=None,
        completion_window="24h",
        status="in_progress",
        total=7,
        completed=0,
        failed=0,
        created_at=now - timedelta(seconds=5),
        expires_at=now + timedelta(hours=1),
        in_progress_at=now - timedelta(seconds=5),
    )
    items = [NewItem(f"c{i}", i, {"model": "flash", "prompt": f"lost {i}"}) for i in range(7)]
    await store.add_batch(record, items)

    # Then the sweeper gives it lanes again, and it completes with every item once
    async with sdk(gateway) as client:
        done = await finished(client, record.id)
        assert done.status == "completed"
        assert done.request_counts is not None
        assert (done.request_counts.completed, done.request_counts.failed) == (7, 0)
        assert done.output_file_id is not None
        output = lines_of((await client.files.content(done.output_file_id)).content)
        assert sorted(line["custom_id"] for line in output) == [f"c{i}" for i in range(7)]
    assert await emulator.calls() == 7


async def test_items_over_a_rate_limit_wait_for_room_instead_of_failing(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
):
    # test-limited allows 3 requests per 2 s window
    gateway = await start_gateway(embedded_worker=True, config_dir=config_dir, **FAST)
    requests = [
        {"custom_id": f"c{i}", "body": {"model": "limited", "prompt": new_id(f"rpm{i}")}}
        for i in range(6)
    ]
    body = {"endpoint": "/v1/generate", "completion_window": "24h", "requests": requests}
    created = await gateway.post_raw("/v1/batches", json.dumps(body))
    assert created.status == 200, created.body
    async with sdk(gateway) as client:
        done = await finished(client, created.body["id"])
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (6, 0)
    assert (await calls_by_model(emulator))["test-limited"] == 6
    assert done.completed_at is not None
    assert done.in_progress_at is not None
    assert done.completed_at - done.in_progress_at >= 1, "the last items did not wait for room"
