"""`GET /v1/files` through the official `openai` SDK: purposes, pages, order, tenants apart."""

import json
from collections.abc import AsyncIterator

import openai
import pytest

from tests.e2e.test_tenancy_isolation import two_tenants
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.polling import poll
from tests.support.tenants import call


def jsonl(custom_id: str) -> bytes:
    body = {"model": "flash", "messages": [{"role": "user", "content": custom_id}]}
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    return json.dumps(line).encode() + b"\n"


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> Gateway:
    return await start_gateway(embedded_worker=True)


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="any", max_retries=0)
    async with sdk:
        yield sdk


async def test_files_list_in_pages_either_way_and_by_purpose(client: openai.AsyncOpenAI):
    # Given three uploaded files and a finished batch's output file
    uploaded = []
    for i in range(3):
        made = await client.files.create(file=(f"in{i}.jsonl", jsonl(f"r{i}")), purpose="batch")
        uploaded.append(made.id)
    batch = await client.batches.create(
        input_file_id=uploaded[0], endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = await poll(
        lambda: client.batches.retrieve(batch.id),
        lambda b: b.status not in ("in_progress", "finalizing"),
        timeout_s=30,
        what="the batch ending",
    )
    assert batch.status == "completed"
    assert batch.output_file_id is not None

    # When they are listed, Then newest first by default, the output file among them
    every = [f.id async for f in client.files.list()]
    assert every == [batch.output_file_id, *uploaded[::-1]]

    # And a page at a time, following `after` while `has_more` says so
    page = await client.files.list(limit=2)
    assert [f.id for f in page.data] == every[:2]
    assert page.has_more is True
    paged = [f.id async for f in client.files.list(limit=2)]
    assert paged == every
    last = await client.files.list(limit=2, after=every[1])
    assert ([f.id for f in last.data], last.has_more) == (every[2:], False)

    # And oldest first, and of one purpose only
    oldest = [f.id async for f in client.files.list(order="asc", limit=3)]
    assert oldest == every[::-1]
    inputs = [f.id async for f in client.files.list(purpose="batch")]
    assert inputs == uploaded[::-1]
    outputs = await client.files.list(purpose="batch_output")
    assert [(f.id, f.purpose) for f in outputs.data] == [(batch.output_file_id, "batch_output")]


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=10001", "limit=ten", "order=sideways", "purpose=fine-tune"]
)
async def test_a_bad_list_query_is_a_clear_400(gateway: Gateway, query: str):
    reply = await gateway.get(f"/v1/files?{query}")
    assert reply.status == 400
    assert reply.body["error"]["message"]


async def test_a_tenant_lists_its_own_files_only(start_gateway: GatewayFactory):
    # Given two tenants, each with a file of its own
    gateway, acme, beta = await two_tenants(start_gateway)
    mine: dict[str, str] = {}
    for name, key in (("acme", acme), ("beta", beta)):
        sdk = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        async with sdk:
            made = await sdk.files.create(file=(f"{name}.jsonl", jsonl(name)), purpose="batch")
            mine[name] = made.id

    # When each lists its files, Then each sees its own and never the other's
    for name, key in (("acme", acme), ("beta", beta)):
        listed = await call(gateway, "GET", "/v1/files", key=key)
        assert listed.status == 200, listed.body
        assert [f["id"] for f in listed.body["data"]] == [mine[name]]
        other = mine["beta" if name == "acme" else "acme"]
        after_other = await call(gateway, "GET", f"/v1/files?after={other}&order=asc", key=key)
        assert other not in {f["id"] for f in after_other.body["data"]}
    # And a caller with no key sees neither
    assert (await call(gateway, "GET", "/v1/files")).status == 401
