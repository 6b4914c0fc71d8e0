"""The official `openai` SDK creating, polling, listing, cancelling and downloading batches."""

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.polling import poll

FINAL = {"completed", "failed", "expired", "cancelled"}


@pytest.fixture
async def worker_gateway(start_gateway: GatewayFactory) -> Gateway:
    return await start_gateway(embedded_worker=True)


@pytest.fixture
async def client(worker_gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=worker_gateway.url + "/v1", api_key="any", max_retries=0)
    async with sdk:
        yield sdk


def chat_line(custom_id: str, text: str, model: str = "gpt-4o-mini", **extra: Any) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    line = {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    return json.dumps({**line, **extra}).encode()


def jsonl(*lines: bytes) -> bytes:
    return b"\n".join(lines) + b"\n"


async def finished(client: openai.AsyncOpenAI, batch_id: str) -> Any:
    return await poll(
        lambda: client.batches.retrieve(batch_id),
        lambda b: b.status in FINAL,
        timeout_s=60,
        what=f"batch {batch_id} ending",
    )


def lines_of(content: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in content.splitlines() if line.strip()]


async def test_a_file_batch_completes_with_one_output_line_per_custom_id(
    client: openai.AsyncOpenAI, emulator: Emulator
):
    # Given an uploaded JSONL file of three chat requests
    upload = await client.files.create(
        file=("in.jsonl", jsonl(*(chat_line(f"r{i}", f"question {i}") for i in range(3)))),
        purpose="batch",
    )
    assert upload.object == "file"
    assert upload.purpose == "batch"
    assert upload.bytes > 0
    assert (await client.files.retrieve(upload.id)).id == upload.id

    # When a batch runs it
    batch = await client.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "nightly"},
    )
    assert batch.status == "in_progress"
    done = await finished(client, batch.id)

    # Then it completed, counted, with each custom id once in the output file
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (3, 3)
    assert done.request_counts.failed == 0
    assert done.metadata == {"run": "nightly"}
    assert done.in_progress_at
    assert done.finalizing_at
    assert done.completed_at
    assert done.output_file_id
    assert done.error_file_id is None
    output = lines_of((await client.files.content(done.output_file_id)).content)
    assert sorted(line["custom_id"] for line in output) == ["r0", "r1", "r2"]
    for line in output:
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        assert line["response"]["body"]["object"] == "chat.completion"
        assert line["response"]["body"]["choices"][0]["message"]["content"]
    assert await emulator.calls() == 3
    # and the input file downloads as it was sent, until it is deleted
    assert (await client.files.content(upload.id)).content.startswith(b'{"custom_id": "r0"')
    deleted = await client.files.delete(upload.id)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(upload.id)


async def test_an_inline_batch_on_generate_answers_in_promptbus_shape(
    worker_gateway: Gateway, client: openai.AsyncOpenAI
):
    requests = [
        {"custom_id": "a", "body": {"model": "flash", "prompt": "one"}},
        {"custom_id": "b", "body": {"model": "flash", "prompt": "two"}},
    ]
    created = await worker_gateway.post_raw(
        "/v1/batches",
        json.dumps({"endpoint": "/v1/generate", "completion_window": "24h", "requests": requests}),
    )
    assert created.status == 200, created.body
    done = await finished(client, created.body["id"])
    assert done.status == "completed"
    assert done.output_file_id is not None
    output = lines_of((await client.files.content(done.output_file_id)).content)
    assert {line["custom_id"]: bool(line["response"]["body"]["text"]) for line in output} == {
        "a": True,
        "b": True,
    }


@pytest.mark.parametrize(
    ("lines", "code", "line"),
    [
        ((chat_line("x", "hi"), b"not json"), "invalid_json_line", 2),
        ((chat_line("x", "hi"), chat_line("x", "again")), "duplicate_custom_id", 2),
        ((chat_line("x", "hi", url="/v1/embeddings"),), "mismatched_endpoint", 1),
        ((chat_line("x", "hi"), chat_line("y", "hi", model="no-such-model")), "model_not_found", 2),
    ],
)
async def test_a_bad_input_fails_the_batch_naming_the_line_and_calls_nothing(
    client: openai.AsyncOpenAI, emulator: Emulator, lines: tuple[bytes, ...], code: str, line: int
):
    upload = await client.files.create(file=("bad.jsonl", jsonl(*lines)), purpose="batch")
    batch = await client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "failed"
    assert batch.errors is not None
    assert batch.errors.data
    first = batch.errors.data[0]
    assert (first.code, first.line) == (code, line)
    assert (await client.batches.retrieve(batch.id)).status == "failed"
    assert await emulator.calls() == 0


async def test_limits_and_bad_requests_are_clear_4xx(
    start_gateway: GatewayFactory, emulator: Emulator
):
    gateway = await start_gateway(embedded_worker=True, batch_max_lines=2, batch_inline_max=1)
    sdk = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="any", max_retries=0)
    async with sdk:
        three = jsonl(*(chat_line(f"r{i}", "hi") for i in range(3)))
        upload = await sdk.files.create(file=("big.jsonl", three), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert batch.status == "failed"
        assert batch.errors is not None
        assert batch.errors.data[0].code == "too_many_requests"
        with pytest.raises(openai.BadRequestError):
            await sdk.files.create(file=("x.jsonl", three), purpose="fine-tune")
        with pytest.raises(openai.NotFoundError):
            await sdk.batches.retrieve("batch_nope")
        with pytest.raises(openai.NotFoundError):
            await sdk.batches.create(
                input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
            )
    two = [{"custom_id": c, "body": {"model": "flash", "prompt": c}} for c in "ab"]
    inline = {"endpoint": "/v1/generate", "completion_window": "24h", "requests": two}
    reply = await gateway.post_raw("/v1/batches", json.dumps(inline))
    assert reply.status == 200
    assert reply.body["status"] == "failed"
    assert reply.body["errors"]["data"][0]["code"] == "too_many_requests"
    assert await emulator.calls() == 0


async def test_batches_list_newest_first_in_pages_and_stay_with_their_tenant(
    client: openai.AsyncOpenAI,
):
    made = []
    for i in range(3):
        upload = await client.files.create(
            file=("in.jsonl", jsonl(chat_line("only", f"page {i}"))), purpose="batch"
        )
        batch = await client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        made.append(batch.id)
    page = await client.batches.list(limit=2)
    assert [b.id for b in page.data] == made[::-1][:2]
    assert page.has_more is True
    every = [b.id async for b in client.batches.list(limit=2)]
    assert every == made[::-1]


async def test_a_batch_runs_and_cancels_alike_on_sqlite_and_postgresql(
    start_gateway: GatewayFactory, database_url: str
):
    gateway = await start_gateway(embedded_worker=True, database_url=database_url)
    sdk = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="any", max_retries=0)
    async with sdk:
        lines = jsonl(*(chat_line(f"r{i}", f"db {i}") for i in range(5)))
        upload = await sdk.files.create(file=("in.jsonl", lines), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = await finished(sdk, batch.id)
        assert done.status == "completed"
        assert done.output_file_id is not None
        output = lines_of((await sdk.files.content(done.output_file_id)).content)
        assert sorted(line["custom_id"] for line in output) == [f"r{i}" for i in range(5)]
        slow = jsonl(
            *(chat_line(f"s{i}", f"db slow {i} [[emulator:delay=2000]]") for i in range(30))
        )
        upload = await sdk.files.create(file=("slow.jsonl", slow), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        await sdk.batches.cancel(batch.id)
        cancelled = await finished(sdk, batch.id)
        assert cancelled.status == "cancelled"
        assert cancelled.request_counts is not None
        assert cancelled.request_counts.completed + cancelled.request_counts.failed == 30
