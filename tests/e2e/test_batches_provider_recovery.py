"""Provider batches that outlive what ran them: a worker gone mid-poll, a window that
closes first, a job a dead worker submitted but never noted."""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from pipeline.batches import BatchStore, NewItem
from pipeline.batches.ids import new_id
from pipeline.batches.provider_state import ProviderState, with_state
from pipeline.batches.store import utcnow
from pipeline.catalog import ModelCatalog
from pipeline.db.batch_tables import BatchRecord
from pipeline.emulator import EmulatorConfig, RunningEmulator
from pipeline.providers.batch_outcomes import BatchItem
from pipeline.providers.setup import gemini_batch_client
from schemas import GenerateRequest
from tests.e2e.test_batches_openai import finished, lines_of
from tests.support.emulator import read_stats, running
from tests.support.gateway import GatewayFactory, serving
from tests.support.polling import poll
from tests.support.provider_batches import (
    FAST_POLL,
    PROVIDER,
    gemini_jobs,
    sdk,
)
from tests.support.settings import settings_for_test


async def test_a_provider_batch_survives_its_worker_going_away(
    session: aiohttp.ClientSession, tmp_path: Path
):
    # Given a provider batch submitted by a gateway's worker, on a Gemini job taking a while
    async with running(EmulatorConfig(batch_step_ms=1_500)) as emu:
        settings: dict[str, Any] = {
            "embedded_worker": True,
            "gemini_base_url": emu.base_url,
            "data_dir": tmp_path,
            "job_stall_s": 0.5,
            "batch_sweep_interval_s": 0.2,
            **FAST_POLL,
        }
        async with aiohttp.ClientSession(base_url=emu.base_url) as jobs:
            requests = [
                {"custom_id": f"k{i}", "body": {"model": "flash", "prompt": f"kept {i}"}}
                for i in range(4)
            ]
            body = {"endpoint": "/v1/generate", "completion_window": "24h", **PROVIDER}
            async with serving(session, **settings) as first:
                created = await first.post_raw(
                    "/v1/batches", json.dumps({**body, "requests": requests})
                )
                assert created.status == 200, created.body
                await poll(lambda: gemini_jobs(jobs), bool, timeout_s=20, what="the job submitted")

            # When that gateway (and its worker, with the poll task it held) is gone, and
            # another starts on the same database
            async with serving(session, **settings) as second, sdk(second) as client:
                done = await finished(client, created.body["id"])

                # Then the batch completes there, each item once, from the one Gemini job
                assert done.status == "completed", done.errors
                assert done.output_file_id is not None
                output = lines_of((await client.files.content(done.output_file_id)).content)
            assert sorted(line["custom_id"] for line in output) == [f"k{i}" for i in range(4)]
            assert len(await gemini_jobs(jobs)) == 1
            assert (await read_stats(jobs))["calls"] == 4


async def test_at_the_window_s_end_the_gemini_job_is_cancelled_and_the_batch_expires(
    start_gateway: GatewayFactory,
):
    # Given a provider batch with a one-second window, on a Gemini job taking a minute
    async with running(EmulatorConfig(batch_step_ms=60_000)) as slow:
        gateway = await start_gateway(
            embedded_worker=True, gemini_base_url=slow.base_url, batch_window_s=1.0, **FAST_POLL
        )
        requests = [{"custom_id": "late", "body": {"model": "flash", "prompt": "slow"}}]
        body = {"endpoint": "/v1/generate", "completion_window": "24h", **PROVIDER}
        created = await gateway.post_raw("/v1/batches", json.dumps({**body, "requests": requests}))
        assert created.status == 200, created.body

        # When the window closes, Then the batch expired, its item with batch_expired
        async with sdk(gateway) as client:
            done = await finished(client, created.body["id"])
            assert done.status == "expired"
            assert done.expired_at is not None
            assert done.error_file_id is not None
            errors = lines_of((await client.files.content(done.error_file_id)).content)
        assert [(line["custom_id"], line["error"]["code"]) for line in errors] == [
            ("late", "batch_expired")
        ]
        # And Gemini's job was cancelled, not left running
        async with aiohttp.ClientSession(base_url=slow.base_url) as jobs:
            (job,) = await gemini_jobs(jobs)
        assert job["metadata"]["state"] == "BATCH_STATE_CANCELLED"


async def test_a_job_submitted_by_a_worker_that_died_before_noting_it_is_adopted(
    start_gateway: GatewayFactory,
    batch_emulator: RunningEmulator,
    batch_jobs: aiohttp.ClientSession,
):
    # Given a provider batch whose worker began its submit, and Gemini made the job, but
    # the worker died before it noted the job's name
    gateway = await start_gateway(
        embedded_worker=True,
        gemini_base_url=batch_emulator.base_url,
        job_stall_s=0.5,
        batch_sweep_interval_s=0.2,
        **FAST_POLL,
    )
    now = utcnow()
    state = ProviderState(submitting_at=now.timestamp() - 5)
    record = BatchRecord(
        id=new_id("batch_"),
        tenant="default",
        key_id=None,
        mode="provider",
        endpoint="/v1/generate",
        input_file_id=None,
        completion_window="24h",
        status="in_progress",
        metadata_=with_state(None, state),
        total=3,
        completed=0,
        failed=0,
        created_at=now - timedelta(seconds=5),
        expires_at=now + timedelta(hours=1),
        in_progress_at=now - timedelta(seconds=5),
    )
    prompts = {f"o{i}": f"orphan {i}" for i in range(3)}
    items = [
        NewItem(custom_id, n, {"model": "flash", "prompt": prompt})
        for n, (custom_id, prompt) in enumerate(prompts.items())
    ]
    await BatchStore(gateway.services.database, retention_s=3600).add_batch(record, items)
    catalog = ModelCatalog.from_file(settings_for_test().models_file)
    bridge = gemini_batch_client(settings_for_test(), catalog, batch_emulator.base_url)
    try:
        bridge_items = [
            BatchItem(c, GenerateRequest(model="flash", prompt=p)) for c, p in prompts.items()
        ]
        await bridge.submit(bridge_items, display_name=record.id)
    finally:
        await bridge.aclose()

    # When the sweeper finds its poll overdue, Then the job is found and adopted, not
    # submitted again, and the batch completes from it
    async with sdk(gateway) as client:
        done = await finished(client, record.id)
        assert done.status == "completed", done.errors
        assert done.metadata is None
        assert done.output_file_id is not None
        output = lines_of((await client.files.content(done.output_file_id)).content)
    assert sorted(line["custom_id"] for line in output) == sorted(prompts)
    assert len(await gemini_jobs(batch_jobs)) == 1
    assert (await read_stats(batch_jobs))["calls"] == 3
