"""`GET /metrics` after real requests: the series that moved, by how much, over HTTP."""

import asyncio
import json

import openai

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.metrics import Scrape, scrape
from tests.support.sse import read_stream
from tests.support.unique import new_id
from tests.support.webhook_flows import FAST, settled, submit, webhook_env
from tests.support.webhook_receivers import receiving

FLASH = "gemini-2.5-flash"
DEPLOYMENT = f"gemini/{FLASH}"
GENERATE = "promptbus_http_request_duration_seconds_count"
TOKENS = "promptbus_tokens_total"
COST = "promptbus_cost_usd_total"
LOOKUPS = "promptbus_cache_lookups_total"
CALLS = "promptbus_upstream_calls_total"


async def metrics(gateway: Gateway) -> Scrape:
    return await scrape(gateway.session, gateway.url + "/metrics")


async def test_a_miss_then_a_hit_count_the_lookups_the_call_and_what_it_spent(
    gateway: Gateway, emulator: Emulator
):
    # Given a gateway's metrics before any request
    before = await metrics(gateway)
    assert before.value(TOKENS) == 0

    # When one request misses and the same one then hits
    body = {"model": "flash", "prompt": new_id("metrics")}
    miss = await gateway.generate(body)
    hit = await gateway.generate(body)
    assert (miss.header("X-Cache"), hit.header("X-Cache")) == ("MISS", "HIT")
    after = await metrics(gateway)

    # Then the cache counted one miss and one L1 hit
    assert after.value(LOOKUPS, result="miss") == 1
    assert after.value(LOOKUPS, result="hit", tier="l1") == 1
    assert after.value(LOOKUPS, result="hit", tier="l2") == 0
    # And the route (its pattern), method and status counted two requests with their latency
    route = {"route": "/v1/generate", "method": "POST", "status": "200"}
    assert after.value(GENERATE, **route) == 2
    assert after.value("promptbus_http_request_duration_seconds_sum", **route) > 0
    # And one upstream call to the deployment, in OpenTelemetry's GenAI names too
    assert after.value(CALLS, deployment=DEPLOYMENT, outcome="ok") == 1
    genai = {
        "gen_ai_operation_name": "generate_content",
        "gen_ai_provider_name": "gcp.gemini",
        "gen_ai_request_model": FLASH,
    }
    assert after.value("gen_ai_client_operation_duration_seconds_count", **genai) == 1
    usage, cost = miss.body["usage"], miss.body["cost"]
    in_tokens = {**genai, "gen_ai_token_type": "input"}
    out_tokens = {**genai, "gen_ai_token_type": "output"}
    assert after.value("gen_ai_client_token_usage_sum", **in_tokens) == usage["input_tokens"]
    assert after.value("gen_ai_client_token_usage_sum", **out_tokens) == usage["output_tokens"]
    # And the miss's tokens and cost for the default tenant; the hit spent nothing
    spent = {"model": FLASH, "tenant": "default"}
    assert after.value(TOKENS, **spent, token_type="input") == usage["input_tokens"]
    assert after.value(TOKENS, **spent, token_type="output") == usage["output_tokens"]
    assert after.value(COST, **spent) == cost["total_usd"]
    assert await emulator.calls() == 1


async def test_a_bypass_a_job_route_pattern_and_an_unknown_path_keep_labels_bounded(
    gateway: Gateway,
):
    # When a request bypasses the cache, a job is looked up by id, and an unknown path is hit
    await gateway.generate({"model": "flash", "prompt": "p", "cache": {"no_cache": True}})
    job_id = new_id("job")
    missing = await gateway.get(f"/v1/jobs/{job_id}")
    assert missing.status == 404
    for n in range(3):
        nowhere = await gateway.get(f"/nowhere/{n}")
        assert nowhere.status == 404
    async with gateway.session.request("PURGE", gateway.url + "/v1/generate") as resp:
        assert resp.status == 405
    after = await metrics(gateway)

    # Then the bypass is counted, and routes are their patterns, never the raw paths
    assert after.value(LOOKUPS, result="bypass") == 1
    routes = after.label_values(GENERATE, "route")
    assert "/v1/jobs/{job_id}" in routes
    assert after.value(GENERATE, route="unmatched", status="404") == 3
    assert not [r for r in routes if "nowhere" in r or job_id in r]
    # And a method of the caller's own invention is counted as "other"
    assert after.value(GENERATE, method="other", status="405") == 1
    assert "PURGE" not in after.label_values(GENERATE, "method")


async def test_a_stream_counts_its_call_and_tokens_once(gateway: Gateway):
    # When a streamed request is answered live
    body = {"model": "flash", "prompt": new_id("stream"), "stream": True}
    stream = await read_stream(gateway.session, gateway.url + "/v1/generate", body)
    assert stream.status == 200
    (done,) = stream.named("done")
    after = await metrics(gateway)

    # Then one call and its tokens were counted, once
    assert after.value(CALLS, deployment=DEPLOYMENT, outcome="ok") == 1
    usage = done.data["usage"]
    assert after.value(TOKENS, model=FLASH, token_type="output") == usage["output_tokens"]
    assert after.value(GENERATE, route="/v1/generate", status="200") == 1


async def test_a_chat_completion_counts_under_its_route_and_the_openai_provider(
    gateway: Gateway,
):
    # When the OpenAI SDK asks promptbus for a chat completion
    sdk = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="any", max_retries=0)
    async with sdk:
        completion = await sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": new_id("chat")}]
        )
    assert completion.usage is not None
    after = await metrics(gateway)

    # Then its route, its OpenAI deployment and its tokens were counted
    assert after.value(GENERATE, route="/v1/chat/completions", status="200") == 1
    genai = {"gen_ai_provider_name": "openai", "gen_ai_operation_name": "chat"}
    assert after.value("gen_ai_client_operation_duration_seconds_count", **genai) == 1
    models = after.label_values(TOKENS, "model")
    assert len(models) == 1
    (model,) = models
    assert after.value(TOKENS, model=model, token_type="input") == completion.usage.prompt_tokens


async def test_a_failing_upstream_counts_each_attempt_as_an_error_of_its_type(
    start_gateway: GatewayFactory,
):
    # Given a gateway that tries twice, without waiting long in between
    gateway = await start_gateway(retry_max_attempts=2, retry_base_s=0.01)

    # When the model answers 503 every time
    reply = await gateway.generate(
        {"model": "flash", "prompt": f"{new_id('down')} [[emulator:status=503]]"}
    )
    assert reply.status == 503, reply.body
    after = await metrics(gateway)

    # Then both attempts count as upstream errors of that type, and the request as a 503
    assert after.value(CALLS, deployment=DEPLOYMENT, outcome="upstream_unavailable") == 2
    assert after.value(CALLS, outcome="ok") == 0
    failed = {"gen_ai_request_model": FLASH, "error_type": "upstream_unavailable"}
    assert after.value("gen_ai_client_operation_duration_seconds_count", **failed) == 2
    assert after.value(GENERATE, route="/v1/generate", status="503") == 1
    # And nothing was spent
    assert after.value(TOKENS) == 0


async def test_a_job_with_a_webhook_counts_its_states_its_spend_and_the_delivery() -> None:
    async with webhook_env("memory", **FAST) as env, receiving() as receiver:
        # When a job with its own webhook runs and its completion is delivered
        job_id = await submit(env, webhook_url=receiver.url)
        (attempt,) = await settled(env, job_id)
        assert attempt["outcome"] == "delivered"
        job = (await env.wait_job(job_id)).body
        after = await scrape(env.session, env.gateway.url + "/metrics")

    # Then the job was counted queued, then succeeded, having run its stages
    assert after.value("promptbus_jobs_total", state="queued") == 1
    assert after.value("promptbus_jobs_total", state="succeeded") == 1
    assert after.value("promptbus_job_stages_total", stage="generate") == 1
    # And its cache miss, its tokens for its tenant, and one delivered webhook
    assert after.value(LOOKUPS, result="miss") == 1
    usage = job["result"]["usage"]
    assert after.value(TOKENS, tenant="default", token_type="output") == usage["output_tokens"]
    assert after.value("promptbus_webhook_deliveries_total", outcome="delivered") == 1
    # And the stage queues' depths were sampled (each empty by now)
    queues = after.label_values("promptbus_queue_messages", "queue")
    assert queues, "no queue depth sampled"
    assert after.value("promptbus_queue_messages") == 0


async def test_metrics_can_be_turned_off(start_gateway: GatewayFactory):
    # Given a gateway with metrics off
    gateway = await start_gateway(metrics=False)
    await gateway.generate({"model": "flash", "prompt": "off"})

    # Then /metrics says so, as a JSON 404
    async with gateway.session.get(gateway.url + "/metrics") as resp:
        assert resp.status == 404
        body = json.loads(await resp.text())
    assert "PROMPTBUS_METRICS" in body["error"]["message"]


async def test_identical_requests_in_flight_count_as_coalesced(
    gateway: Gateway, emulator: Emulator
):
    # When five identical requests arrive while the first one's call is under way
    body = {"model": "flash", "prompt": f"{new_id('same')} [[emulator:delay=300]]"}
    replies = await asyncio.gather(*(gateway.generate(body) for _ in range(5)))
    assert [r.status for r in replies] == [200] * 5
    after = await metrics(gateway)

    # Then one upstream call was made, and the four others were counted as coalesced
    assert await emulator.calls() == 1
    assert after.value("promptbus_coalesced_requests_total", scope="process") == 4
    assert after.value(CALLS, outcome="ok") == 1
    # And only the one call's tokens were spent
    usage = replies[0].body["usage"]
    assert after.value(TOKENS, token_type="output") == usage["output_tokens"]
