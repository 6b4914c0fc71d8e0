"""A tenant over its budget: a batch's items that would call upstream fail with
`budget_exceeded` lines and call nothing; an item whose answer is cached is still answered."""

from tests.e2e.test_batches_execution import run_file, sdk
from tests.e2e.test_batches_openai import chat_line, finished, jsonl, lines_of
from tests.support.emulator import Emulator
from tests.support.gateway import GatewayFactory
from tests.support.tenants import set_budget
from tests.support.unique import new_id

RULES_TTL_S = 0.2


async def test_items_over_the_tenants_budget_fail_and_a_cached_one_is_answered(
    start_gateway: GatewayFactory, emulator: Emulator
):
    # Given a tenant whose daily budget of one and a half answers two answers have spent,
    # one of them cached
    gateway = await start_gateway(embedded_worker=True, budget_rules_ttl_s=RULES_TTL_S)
    tag = new_id("batch-budget")
    async with sdk(gateway) as client:
        priced = await gateway.generate({"model": "gpt-4o-mini", "prompt": f"{tag} priced"})
        assert priced.status == 200, priced.body
        await set_budget(gateway, priced.body["cost"]["total_usd"] * 1.5, RULES_TTL_S)
        cached = f"{tag} cached"
        for prompt in (cached, f"{tag} spent"):
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
            )
        calls = await emulator.calls()

        # When a batch of three new prompts and the cached one runs
        lines = [chat_line(f"new-{i}", f"{tag} new {i}") for i in range(3)]
        lines.append(chat_line("cached", cached))
        done = await finished(client, (await run_file(client, jsonl(*lines))).id)

        # Then the new ones failed over the budget, calling nothing, and the cached one answered
        assert done.status == "completed", done.errors
        assert done.request_counts is not None
        assert (done.request_counts.completed, done.request_counts.failed) == (1, 3)
        assert done.error_file_id is not None
        assert done.output_file_id is not None
        errors = lines_of((await client.files.content(done.error_file_id)).content)
        assert sorted(line["custom_id"] for line in errors) == ["new-0", "new-1", "new-2"]
        for line in errors:
            assert line["response"]["status_code"] == 429
            assert line["response"]["body"]["error"]["code"] == "budget_exceeded"
        (answered,) = lines_of((await client.files.content(done.output_file_id)).content)
        assert answered["custom_id"] == "cached"
        assert await emulator.calls() == calls
