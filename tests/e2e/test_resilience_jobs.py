"""Retries, fallbacks and rate limits on the job path: Celery retries carry the routing state."""

import asyncio
from pathlib import Path
from typing import Any

from tests.support.job_env import job_env
from tests.support.resilience import BACKUP, FAST, PRIMARY, calls_by_model, fault, set_faults
from tests.support.unique import new_id


async def _finished(env: Any, body: dict[str, Any]) -> dict[str, Any]:
    accepted = await env.submit(body)
    assert accepted.status == 202, accepted.body
    done = await env.wait_job(accepted.body["id"], 30)
    assert done.status == 200, done.body
    assert done.body["state"] in ("succeeded", "failed"), done.body
    return dict(done.body)


async def test_a_job_retries_two_503s_and_succeeds_on_the_third_attempt(
    config_dir: Path,
) -> None:
    async with job_env("memory", config_dir=config_dir, **FAST) as env:
        await set_faults(env.emulator, fault("test-primary", status=503, times=2))

        job = await _finished(env, {"model": "test-primary", "prompt": new_id("job503")})

        assert job["state"] == "succeeded", job
        assert job["result"]["routing"]["attempts"] == 3
        assert (await calls_by_model(env.emulator))["test-primary"] == 3


async def test_a_job_fails_once_the_budget_is_spent_and_its_record_says_so(
    config_dir: Path,
) -> None:
    async with job_env("memory", config_dir=config_dir, retry_max_attempts=3, **FAST) as env:
        await set_faults(env.emulator, fault("test-primary", status=503))

        job = await _finished(env, {"model": "test-primary", "prompt": new_id("jobfail")})

        assert job["state"] == "failed", job
        assert job["error"]["type"] == "upstream_unavailable"
        assert job["error"]["attempts"] == 3
        assert (await calls_by_model(env.emulator))["test-primary"] == 3


async def test_a_job_falls_back_when_the_primary_is_down(config_dir: Path) -> None:
    async with job_env("memory", config_dir=config_dir, **FAST) as env:
        await set_faults(env.emulator, fault("test-primary", status=500))

        job = await _finished(env, {"model": "primary-then-backup", "prompt": new_id("jobfb")})

        assert job["state"] == "succeeded", job
        assert job["result"]["routing"]["deployment"] == BACKUP
        assert job["result"]["routing"]["fallbacks"] == [PRIMARY]


async def test_jobs_over_the_rate_limit_wait_in_the_queue_instead_of_failing(
    config_dir: Path,
) -> None:
    # test-limited allows 3 requests per 2 s window
    async with job_env("memory", config_dir=config_dir, **FAST) as env:
        bodies = [{"model": "limited", "prompt": new_id(f"jobrpm{i}")} for i in range(5)]

        jobs = await asyncio.gather(*(_finished(env, body) for body in bodies))

        assert [job["state"] for job in jobs] == ["succeeded"] * 5, jobs
        assert all(job["result"]["routing"]["attempts"] == 1 for job in jobs)
        assert (await calls_by_model(env.emulator))["test-limited"] == 5
        finished = sorted(job["finished_at"] for job in jobs)
        assert finished[-1] - finished[0] >= 1.0, "the last two jobs did not wait for room"


async def test_a_job_waits_out_a_429_retry_delay_as_a_celery_countdown(
    config_dir: Path,
) -> None:
    async with job_env("memory", config_dir=config_dir, **FAST) as env:
        await set_faults(
            env.emulator, fault("test-primary", status=429, retry_after_s=1.0, times=1)
        )

        job = await _finished(env, {"model": "test-primary", "prompt": new_id("job429")})

        assert job["state"] == "succeeded", job
        assert job["result"]["routing"]["attempts"] == 2
        assert job["finished_at"] - job["created_at"] >= 1.0, "the retry delay was not honoured"


async def test_a_job_is_not_retried_after_a_400_nor_a_safety_block(config_dir: Path) -> None:
    async with job_env("memory", config_dir=config_dir, **FAST) as env:
        await set_faults(env.emulator, fault("test-primary", status=400, times=1))
        rejected = await _finished(env, {"model": "test-primary", "prompt": new_id("job400")})
        await set_faults(env.emulator, fault("test-primary", "safety"))
        blocked = await _finished(env, {"model": "primary-then-backup", "prompt": new_id("jobblk")})
        fell_back = await _finished(
            env, {"model": "blocked-then-openai", "prompt": new_id("jobblk2")}
        )

        assert rejected["state"] == "failed", rejected
        assert (rejected["error"]["type"], rejected["error"]["attempts"]) == (
            "upstream_rejected",
            1,
        )
        assert blocked["state"] == "failed", blocked
        assert blocked["error"]["type"] == "content_blocked"
        assert blocked["error"]["attempts"] == 1
        assert fell_back["state"] == "succeeded", fell_back
        assert fell_back["result"]["routing"]["deployment"] == "openai/test-openai"
        assert (await calls_by_model(env.emulator))["test-primary"] == 3
