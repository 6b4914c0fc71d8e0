"""Conversation memory: turns kept server-side, sent before the next, per tenant, in order."""

import asyncio
from typing import Any

import openai
import pytest

from pipeline.bus.admission import Refused, admit_event
from schemas import RequestEvent
from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory, Reply
from tests.support.polling import poll
from tests.support.services import REDIS_URL
from tests.support.tenants import ADMIN_KEY, bearer, tenant_with_key


async def turn(gateway: Gateway, session: str, prompt: str, **extra: Any) -> Reply:
    body = {"model": "flash", "prompt": prompt, "session_id": session, **extra}
    return await gateway.generate(body)


def said(reply: Reply) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in reply.body["messages"]]


async def test_each_turn_is_sent_after_the_ones_before_it_and_kept(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway = await start_gateway()

    first = await turn(gateway, "s1", "My name is Ada.")
    second = await turn(gateway, "s1", "What is my name?")

    assert first.status == second.status == 200
    # The second call carried the first turn: more input, and another cache key
    assert second.body["usage"]["input_tokens"] > first.body["usage"]["input_tokens"]
    kept = await gateway.get("/v1/sessions/s1")
    assert kept.status == 200
    assert said(kept) == [
        ("user", "My name is Ada."),
        ("assistant", first.body["text"]),
        ("user", "What is my name?"),
        ("assistant", second.body["text"]),
    ]
    assert 0 < kept.body["ttl_s"] <= 86_400
    assert await emulator.calls() == 2


async def test_the_cache_key_covers_the_history_sent(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway = await start_gateway()

    # The same prompt in two sessions with the same (empty) history: one call
    one = await turn(gateway, "a", "hello")
    other = await turn(gateway, "b", "hello")
    assert (one.header("X-Cache"), other.header("X-Cache")) == ("MISS", "HIT")

    # Then the same prompt again in session a (now with history) is a new call
    again = await turn(gateway, "a", "hello")
    assert again.header("X-Cache") == "MISS"
    assert again.body["cache"]["key"] != one.body["cache"]["key"]
    assert await emulator.calls() == 2


async def test_a_failed_turn_is_not_kept(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway()

    await turn(gateway, "s", "fine")
    failed = await turn(gateway, "s", "fails [[emulator:status=400]]")

    assert failed.status >= 400
    kept = await gateway.get("/v1/sessions/s")
    assert [content for _, content in said(kept)][0::2] == ["fine"]


async def test_history_is_bounded_by_turns(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(session_max_turns=1)

    replies = [await turn(gateway, "s", f"turn {n}") for n in range(4)]

    # Each turn past the first sends one kept turn, however long the session grows
    tokens = [r.body["usage"]["input_tokens"] for r in replies]
    assert tokens[1] > tokens[0]
    assert tokens[1] == tokens[2] == tokens[3]


async def test_concurrent_turns_of_one_session_run_in_turn_and_lose_nothing(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway()

    replies = await asyncio.gather(
        *(turn(gateway, "busy", f"question {n} [[emulator:delay=50]]") for n in range(4))
    )

    assert all(r.status == 200 for r in replies)
    kept = said(await gateway.get("/v1/sessions/busy"))
    assert len(kept) == 8
    # Each question is followed by its own answer, and each answer saw all turns before it
    by_text = {r.body["text"]: r for r in replies}
    inputs = []
    for (role, question), (answer_role, answer) in zip(kept[0::2], kept[1::2], strict=True):
        assert (role, answer_role) == ("user", "assistant")
        assert question.split(" [[")[0] in answer
        inputs.append(by_text[answer].body["usage"]["input_tokens"])
    assert inputs == sorted(inputs)
    assert len(set(inputs)) == 4


async def test_sessions_are_shared_by_gateways_on_one_redis(
    start_gateway: GatewayFactory, redis_prefix: str
) -> None:
    a = await start_gateway(redis_url=REDIS_URL, redis_prefix=redis_prefix)
    b = await start_gateway(redis_url=REDIS_URL, redis_prefix=redis_prefix)

    first = await turn(a, "shared", "remember blue")
    second = await turn(b, "shared", "what colour?")

    assert second.body["usage"]["input_tokens"] > first.body["usage"]["input_tokens"]
    from_a = said(await a.get("/v1/sessions/shared"))
    assert [content for _, content in from_a][0::2] == ["remember blue", "what colour?"]
    assert (await b.session.delete(b.url + "/v1/sessions/shared")).status == 204
    assert (await a.get("/v1/sessions/shared")).status == 404


async def test_tenants_never_see_each_others_sessions(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    acme, _ = await tenant_with_key(gateway, "acme")
    beta, _ = await tenant_with_key(gateway, "beta")

    await gateway.generate(
        {"model": "flash", "prompt": "acme secret", "session_id": "same"}, bearer(acme)
    )
    seen_by_beta = await gateway.session.get(
        gateway.url + "/v1/sessions/same", headers=bearer(beta)
    )
    beta_turn = await gateway.generate(
        {"model": "flash", "prompt": "hi", "session_id": "same"}, bearer(beta)
    )

    assert seen_by_beta.status == 404
    assert beta_turn.status == 200
    assert "acme secret" not in beta_turn.body["text"]
    mine = await gateway.session.get(gateway.url + "/v1/sessions/same", headers=bearer(acme))
    assert (await mine.json())["messages"][0]["content"] == "acme secret"


async def test_the_openai_api_joins_a_session_by_header(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway()
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)

    for text in ("I like tea.", "What do I like?"):
        await client.chat.completions.create(
            model="flash",
            messages=[{"role": "user", "content": text}],
            extra_headers={"X-Session-Id": "chat-1"},
        )
    bad = await gateway.post_raw(
        "/v1/chat/completions",
        '{"model": "flash", "messages": [{"role": "user", "content": "x"}]}',
        {"X-Session-Id": "not ok!"},
    )
    await client.close()

    kept = said(await gateway.get("/v1/sessions/chat-1"))
    assert [content for _, content in kept][0::2] == ["I like tea.", "What do I like?"]
    assert bad.status == 400
    assert "X-Session-Id" in bad.body["error"]["message"]


async def test_a_bus_event_with_a_session_is_refused(start_gateway: GatewayFactory) -> None:
    # A session is kept by an ingress taking a turn (a sync request, an HTTP job), not the bus
    gateway = await start_gateway()
    event = RequestEvent(job_id="j1", request={"model": "flash", "prompt": "x", "session_id": "s"})
    ctx = gateway.services.ctx
    with pytest.raises(Refused, match="session_id"):
        admit_event(event, ctx.catalog, ctx.templates)


@pytest.mark.parametrize("shared", [False, True], ids=["memory", "redis"])
async def test_summary_memory_folds_turns_leaving_the_window_into_a_running_summary(
    start_gateway: GatewayFactory, emulator: Emulator, redis_prefix: str, shared: bool
) -> None:
    where = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix} if shared else {}
    gateway = await start_gateway(session_memory="summary", session_max_turns=1, **where)

    for n in range(3):
        assert (await turn(gateway, "long", f"fact number {n}")).status == 200
        # Each fold runs after its turn's answer; the test waits for it to be done
        await poll(emulator.calls, lambda calls, n=n: calls == 2 * n + 1, timeout_s=30, what="fold")

    kept = await gateway.get("/v1/sessions/long")
    # Only the last turn is kept as messages; the two before it are in the summary
    assert [content for _, content in said(kept)][0::2] == ["fact number 2"]
    assert kept.body["summary"]
    # Three turns, and a summary call as each of the first two left the window
    assert await emulator.calls() == 5
    # The next turn is sent with the summary ahead of the kept turn
    last = await turn(gateway, "long", "what facts?")
    plain = await turn(gateway, "other", "what facts?")
    assert last.body["usage"]["input_tokens"] > plain.body["usage"]["input_tokens"]
