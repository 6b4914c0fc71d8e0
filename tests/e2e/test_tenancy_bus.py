"""Request events name their tenant: once tenants exist, an unknown one is dead-lettered."""

import asyncio
import json

from tests.support.bus_tap import BusTap
from tests.support.job_env import job_env
from tests.support.tenants import ADMIN_KEY, call, tenant_with_key
from tests.support.unique import new_id


def event(job_id: str, **extra: object) -> bytes:
    body = {
        "schema": "promptbus.request/v1",
        "job_id": job_id,
        "request": {"model": "flash", "prompt": f"{job_id} from the bus"},
        **extra,
    }
    return json.dumps(body).encode()


async def test_an_event_for_an_unknown_tenant_is_dead_lettered_with_a_failed_completion() -> None:
    async with job_env("memory", admin_key=ADMIN_KEY) as env:
        # Given a tenant acme with a key
        key, _ = await tenant_with_key(env.gateway, "acme")
        ghost, unnamed, mine = new_id("ghost"), new_id("unnamed"), new_id("acme")
        async with BusTap.dead_letters(env.bus) as dlq, BusTap.completions(env.bus) as done:
            # When events arrive for a tenant nobody made, for none, and for acme
            for job_id, extra in (
                (ghost, {"tenant": "ghost"}),
                (unnamed, {}),
                (mine, {"tenant": "acme"}),
            ):
                await asyncio.to_thread(env.bus.publish_raw, event(job_id, **extra), test_id=job_id)

            # Then the unknown tenant's event (and the unnamed one: tenant default, not made)
            # is dead-lettered, and its publisher hears of it on completion.failed
            for job_id, tenant in ((ghost, "ghost"), (unnamed, "default")):
                dead = await dlq.wait_for(test_id=job_id)
                assert dead.reason == f"unknown tenant {tenant!r}"
                failed = await done.wait_for(job_id=job_id)
                assert failed.routing_key == "completion.failed"
                assert failed.body["error"]["type"] == "invalid_event"
            # And acme's runs, as acme's job: acme's key sees it
            assert (await done.wait_for(job_id=mine)).state == "succeeded"
        job = await call(env.gateway, "GET", f"/v1/jobs/{mine}", key=key)
        assert job.status == 200
        assert job.body["state"] == "succeeded"


async def test_with_no_tenants_configured_any_tenant_is_taken() -> None:
    async with job_env("memory") as env:
        job_id = new_id("anyone")
        async with BusTap.completions(env.bus) as done:
            await asyncio.to_thread(
                env.bus.publish_raw, event(job_id, tenant="whoever"), test_id=job_id
            )
            assert (await done.wait_for(job_id=job_id)).state == "succeeded"
