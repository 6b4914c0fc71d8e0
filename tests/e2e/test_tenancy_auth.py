"""API keys at the door: the modes, the 401 and 403 of each API, and a key's rate limit."""

import openai
import pytest
import structlog
from google.genai import errors

from tests.support.gateway import GatewayFactory
from tests.support.genai_clients import genai_client
from tests.support.tenants import ADMIN_KEY, admin, call, generate, tenant_with_key

ASK = {"model": "flash", "prompt": "hello"}


async def test_with_no_keys_on_loopback_every_request_is_the_default_tenant(
    start_gateway: GatewayFactory,
) -> None:
    # Given a loopback gateway with no keys (any key sent, e.g. an SDK's placeholder, is ignored)
    gateway = await start_gateway()

    # Then requests with no key, or any key, are answered
    for key in (None, "sk-anything"):
        reply = await generate(gateway.session, gateway.url, key, "open")
        assert reply.status == 200, reply.body
    # And an event-free job lands on tenant `default`
    listed = await call(gateway, "GET", "/v1/jobs")
    assert listed.status == 200


async def test_once_a_key_exists_a_missing_or_bad_key_is_a_401(
    start_gateway: GatewayFactory,
) -> None:
    # Given a gateway with one tenant's key
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    key, _ = await tenant_with_key(gateway, "acme")

    # Then no key, a wrong key, and a malformed header are 401s in promptbus's JSON error
    for headers in ({}, {"Authorization": "Bearer pb_wrong"}, {"Authorization": key}):
        reply = await call(gateway, "POST", "/v1/generate", json=ASK, headers=headers)
        assert reply.status == 401, headers
        assert reply.body["error"]["type"] == "unauthenticated"
        assert reply.body["error"]["retryable"] is False
        assert reply.header("X-Request-Id")

    # And the key works as a Bearer token and as x-api-key
    bearer = await call(gateway, "POST", "/v1/generate", key=key, json=ASK)
    header = await call(gateway, "POST", "/v1/generate", json=ASK, headers={"x-api-key": key})
    assert (bearer.status, header.status) == (200, 200)

    # And the probes and the OpenAPI document stay open
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert (await call(gateway, "GET", path)).status == 200, path


async def test_the_openai_sdk_raises_its_own_401_and_403(start_gateway: GatewayFactory) -> None:
    # Given a key that may use `flash` only
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    key, _ = await tenant_with_key(gateway, "acme", allowed_models=["flash"])
    messages = [{"role": "user", "content": "hi"}]

    # When the openai SDK calls with a bad key, then with the key for another model
    bad = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="pb_bad", max_retries=0)
    good = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError) as unauthenticated:
            await bad.chat.completions.create(model="flash", messages=messages)  # type: ignore[arg-type]
        with pytest.raises(openai.PermissionDeniedError) as denied:
            await good.chat.completions.create(model="pro", messages=messages)  # type: ignore[arg-type]
        # And the allowed model answers (by its alias or its provider model)
        for model in ("flash", "gemini-2.5-flash"):
            answer = await good.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
            assert answer.choices[0].message.content
    finally:
        await bad.close()
        await good.close()

    # Then each error is OpenAI's object
    assert unauthenticated.value.status_code == 401
    body = unauthenticated.value.body
    assert isinstance(body, dict)
    assert body["type"] == "authentication_error"
    assert set(body) == {"message", "type", "param", "code"}
    assert denied.value.status_code == 403
    assert isinstance(denied.value.body, dict)
    assert denied.value.body["type"] == "permission_error"


@pytest.mark.parametrize("version", ["v1", "v1beta"])
async def test_google_genai_gets_a_401_and_a_403_in_googles_shape(
    start_gateway: GatewayFactory, version: str
) -> None:
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    key, _ = await tenant_with_key(gateway, "acme", allowed_models=["flash"])

    # When google-genai calls with a bad key, then with the key for another model
    async with genai_client(gateway.url, version, api_key="pb_bad") as bad:
        with pytest.raises(errors.ClientError) as unauthenticated:
            await bad.aio.models.generate_content(model="flash", contents="hi")
    async with genai_client(gateway.url, version, api_key=key) as good:
        with pytest.raises(errors.ClientError) as denied:
            await good.aio.models.generate_content(model="pro", contents="hi")
        # And its key (x-goog-api-key) works for the model it may use
        answer = await good.aio.models.generate_content(model="flash", contents="hi")
        assert answer.text

    # Then each is Google's error, with its status
    assert (unauthenticated.value.code, unauthenticated.value.status) == (401, "UNAUTHENTICATED")
    assert (denied.value.code, denied.value.status) == (403, "PERMISSION_DENIED")


async def test_a_gemini_key_may_come_as_the_key_query_parameter(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    key, _ = await tenant_with_key(gateway, "acme")
    path = "/v1beta/models/flash:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}

    with_key = await call(gateway, "POST", f"{path}?key={key}", json=body)
    without = await call(gateway, "POST", path, json=body)
    wrong = await call(gateway, "POST", f"{path}?key=nope", json=body)

    assert with_key.status == 200
    assert without.status == wrong.status == 401
    assert wrong.body["error"]["status"] == "UNAUTHENTICATED"
    # ?key= is the Gemini API's way only: promptbus's own routes do not read it
    own = await call(gateway, "POST", f"/v1/generate?key={key}", json=ASK)
    assert own.status == 401


async def test_a_key_over_its_rpm_gets_a_429_with_retry_after(
    start_gateway: GatewayFactory,
) -> None:
    # Given a key allowed 2 requests a minute
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    key, _ = await tenant_with_key(gateway, "acme", rpm=2)
    other, _ = await tenant_with_key(gateway, "beta")

    # When it makes three (cache hits count: they are requests)
    replies = [await generate(gateway.session, gateway.url, key, "limited") for _ in range(3)]

    # Then the third is a 429 that says when to come back
    assert [r.status for r in replies] == [200, 200, 429]
    refused = replies[2]
    assert refused.body["error"]["type"] == "rate_limited"
    assert 1 <= int(refused.header("Retry-After") or 0) <= 60
    # And another key is not held up by it
    assert (await generate(gateway.session, gateway.url, other, "limited")).status == 200


async def test_a_key_over_its_tpm_gets_a_429(start_gateway: GatewayFactory) -> None:
    # Given a key allowed 100 tokens a minute, and one answer that spent some of them
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    key, _ = await tenant_with_key(gateway, "acme", tpm=100)
    first = await generate(
        gateway.session, gateway.url, key, "tokens one", params={"max_output_tokens": 60}
    )
    assert first.status == 200
    spent = first.body["usage"]["total_tokens"]
    assert 0 < spent < 90

    # When the next request is estimated at more than what is left (its max output alone)
    over = {"params": {"max_output_tokens": 100 - spent}}
    second = await generate(gateway.session, gateway.url, key, "tokens two", **over)

    # Then it is a 429 that says when to come back
    assert second.status == 429
    assert second.body["error"]["type"] == "rate_limited"
    assert second.header("Retry-After")


async def test_a_keys_tpm_counts_the_tokens_spent_not_the_estimate(
    start_gateway: GatewayFactory,
) -> None:
    # Given a key allowed 200 tokens a minute
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    key, _ = await tenant_with_key(gateway, "acme", tpm=200)

    # When a request estimated at over 150 tokens (its max output) spends far fewer
    big = {"params": {"max_output_tokens": 150}}
    first = await generate(gateway.session, gateway.url, key, "estimated high", **big)
    assert first.status == 200
    assert first.body["usage"]["total_tokens"] < 90

    # Then what it did not spend is given back: one estimated at 100 more still fits
    rest = {"params": {"max_output_tokens": 100}}
    second = await generate(gateway.session, gateway.url, key, "estimated again", **rest)
    assert second.status == 200, second.body
    spent = first.body["usage"]["total_tokens"] + second.body["usage"]["total_tokens"]

    # And a cache hit of the first spends nothing: after it, a request estimated at
    # nearly all that is left (its max output and its ~4 prompt tokens) still fits
    hit = await generate(gateway.session, gateway.url, key, "estimated high", **big)
    assert (hit.status, hit.header("X-Cache")) == (200, "HIT")
    left = {"params": {"max_output_tokens": 200 - spent - 8}}
    assert (await generate(gateway.session, gateway.url, key, "the rest", **left)).status == 200


async def test_a_disabled_tenants_keys_are_refused(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    key, _ = await tenant_with_key(gateway, "acme")
    assert (await generate(gateway.session, gateway.url, key, "before")).status == 200

    disabled = await admin(gateway, "POST", "/tenants/acme/disable")

    assert disabled.status == 200
    assert disabled.body["disabled"] is True
    refused = await generate(gateway.session, gateway.url, key, "after")
    assert refused.status == 403
    assert refused.body["error"]["type"] == "permission_denied"


async def test_auth_on_requires_a_key_even_with_none_made(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(auth="on")

    reply = await generate(gateway.session, gateway.url, None, "closed")

    assert reply.status == 401


async def test_auth_off_ignores_keys_entirely(start_gateway: GatewayFactory) -> None:
    # Given keys exist, but auth is off
    gateway = await start_gateway(auth="off", admin_key=ADMIN_KEY)
    await tenant_with_key(gateway, "acme")

    # Then a request with no key is served, as tenant default
    assert (await generate(gateway.session, gateway.url, None, "off")).status == 200


async def test_keys_never_appear_in_logs(
    start_gateway: GatewayFactory, logs: list[structlog.typing.EventDict]
) -> None:
    # Given a gateway whose requests fail and succeed with keys of every kind
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    key, _ = await tenant_with_key(gateway, "acme", allowed_models=["flash"], rpm=1)
    wrong = key[:-4] + "abcd"
    await generate(gateway.session, gateway.url, key, "ok")
    await generate(gateway.session, gateway.url, key, "over its rpm")
    await generate(gateway.session, gateway.url, key, "denied", model="pro")
    await generate(gateway.session, gateway.url, wrong, "wrong")
    gemini = "/v1beta/models/flash:generateContent"
    await call(gateway, "POST", f"{gemini}?key={wrong}", json={"contents": []})
    await call(gateway, "GET", "/v1/admin/tenants", key=wrong)

    # Then the failures were logged, and no key (nor the admin key) is in any line
    assert sum(1 for line in logs if line.get("event") == "request failed") >= 5
    text = repr(logs)
    for secret in (key, wrong, ADMIN_KEY, key[11:]):
        assert secret not in text
