"""The emulator's Gemini Batch API, driven by the real google-genai SDK over loopback."""

import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from google import genai
from google.genai import errors, types

from pipeline.emulator import EmulatorConfig, RunningEmulator
from tests.support.emulator import GEMINI_MODEL, read_stats, running, set_rules
from tests.support.genai_clients import VERSIONS, genai_client
from tests.support.polling import poll

STEP_MS = 100
DONE = (types.JobState.JOB_STATE_SUCCEEDED, types.JobState.JOB_STATE_CANCELLED)


def inline(text: str, custom_id: str, **config: Any) -> dict[str, Any]:
    """One inline request as a user of the SDK writes it."""
    request: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "metadata": {"custom_id": custom_id},
    }
    return {**request, "config": config} if config else request


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with running(EmulatorConfig(batch_step_ms=STEP_MS)) as emulator:
        yield emulator


@pytest.fixture
async def http(emu: RunningEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emu.base_url) as session:
        yield session


@pytest.fixture(params=VERSIONS)
async def client(request: pytest.FixtureRequest, emu: RunningEmulator) -> AsyncIterator[Any]:
    async with genai_client(emu.base_url, request.param) as sdk:
        yield sdk


async def finished(client: genai.Client, name: str) -> types.BatchJob:
    """Poll the job until it is done."""
    return await poll(
        lambda: client.aio.batches.get(name=name),
        lambda job: job.state in DONE,
        timeout_s=10,
        what=f"{name} done",
    )


async def test_a_batch_moves_from_pending_through_running_to_succeeded(
    client: genai.Client, http: aiohttp.ClientSession
) -> None:
    # Given a batch of two inline requests, one with its own config
    job = await client.aio.batches.create(
        model=GEMINI_MODEL,
        src=[inline("hello there", "a"), inline("one two three four", "b", max_output_tokens=2)],
        config={"display_name": "nightly"},
    )

    # Then it starts pending, with its name, model and display name, and nothing has run
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.name is not None
    assert job.name.startswith("batches/")
    assert (job.model, job.display_name) == (f"models/{GEMINI_MODEL}", "nightly")
    assert (await read_stats(http))["calls"] == 0

    # When it is polled, Then it is seen running before it succeeds
    seen = set()
    while (job := await client.aio.batches.get(name=job.name)).state not in DONE:
        seen.add(job.state)
    assert types.JobState.JOB_STATE_RUNNING in seen
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.end_time is not None

    # And each request is answered as generateContent answers it, in order, with its metadata
    assert job.dest is not None
    assert job.dest.inlined_responses is not None
    first, second = job.dest.inlined_responses
    assert first.metadata == {"custom_id": "a"}
    assert second.metadata == {"custom_id": "b"}
    assert first.response is not None
    assert first.response.text is not None
    assert first.response.text.startswith(f"[{GEMINI_MODEL}] hello there #")
    assert second.response is not None
    assert second.response.candidates
    assert second.response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    direct = await client.aio.models.generate_content(model=GEMINI_MODEL, contents="hello there")
    assert first.response.text == direct.text

    # And each request counted as one upstream call (the direct call makes three)
    stats = await read_stats(http)
    assert (stats["calls"], stats["by_model"]) == (3, {GEMINI_MODEL: 3})


async def test_a_failing_request_gets_an_error_and_the_others_their_answers(
    client: genai.Client, http: aiohttp.ClientSession
) -> None:
    # Given a batch whose second request carries a status directive
    src = [inline("fine", "a"), inline("[[emulator:status=503]] broken", "b"), inline("ok", "c")]
    job = await client.aio.batches.create(model=GEMINI_MODEL, src=src)

    # When it has run
    assert job.name is not None
    done = await finished(client, job.name)

    # Then it succeeded as a whole, the failed request holding a Status and no response
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest is not None
    assert done.dest.inlined_responses is not None
    results = done.dest.inlined_responses
    assert [r.error is None for r in results] == [True, False, True]
    assert results[1].error is not None
    assert results[1].response is None
    assert (results[1].error.code, results[1].error.message) == (503, "Emulated error 503.")
    assert (await read_stats(http))["errors"] == 1


async def test_fault_rules_fail_requests_in_a_batch(
    client: genai.Client, http: aiohttp.ClientSession
) -> None:
    # Given a rule that fails the second Gemini call with a 429
    await set_rules(
        http, {"api": "gemini", "fault": "status", "status": 429, "after": 1, "times": 1}
    )

    # When a batch of three runs
    src = [inline(f"item {i}", str(i)) for i in range(3)]
    job = await client.aio.batches.create(model=GEMINI_MODEL, src=src)
    assert job.name is not None
    done = await finished(client, job.name)

    # Then exactly the second request failed, with the rule's status
    assert done.dest is not None
    assert done.dest.inlined_responses is not None
    codes = [r.error.code if r.error else None for r in done.dest.inlined_responses]
    assert codes == [None, 429, None]


async def test_a_cancelled_batch_answers_nothing(
    client: genai.Client, http: aiohttp.ClientSession
) -> None:
    # Given a pending batch
    job = await client.aio.batches.create(model=GEMINI_MODEL, src=[inline("hello", "a")])
    assert job.name is not None

    # When it is cancelled
    await client.aio.batches.cancel(name=job.name)

    # Then it stays cancelled, with no output, and made no upstream call
    done = await finished(client, job.name)
    assert done.state == types.JobState.JOB_STATE_CANCELLED
    assert done.dest is None
    assert done.end_time is not None
    assert (await read_stats(http))["calls"] == 0


async def test_batches_are_listed_a_page_at_a_time_and_deleted(client: genai.Client) -> None:
    # Given three batches
    names = []
    for i in range(3):
        job = await client.aio.batches.create(model=GEMINI_MODEL, src=[inline("hi", str(i))])
        names.append(job.name)

    # When they are listed two a page, Then the pager walks every page in creation order
    pager = await client.aio.batches.list(config={"page_size": 2})
    assert len(pager.page) == 2
    assert [job.name async for job in pager] == names

    # When one is deleted, Then it is gone from the list, and getting it is a 404
    await client.aio.batches.delete(name=names[0])
    assert [job.name async for job in await client.aio.batches.list()] == names[1:]
    with pytest.raises(errors.ClientError) as caught:
        await client.aio.batches.get(name=names[0])
    assert caught.value.code == 404


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({}, "batch is not specified"),
        ({"batch": {"inputConfig": {"requests": {"requests": []}}}}, "requests is not specified"),
        ({"batch": {"inputConfig": {"requests": {"requests": [{"x": 1}]}}}}, "requests[0]"),
        ({"batch": {"inputConfig": {"fileName": "files/x"}}}, "not found"),
    ],
)
async def test_a_malformed_batch_is_a_400_and_creates_nothing(
    http: aiohttp.ClientSession, body: dict[str, Any], problem: str
) -> None:
    # When a malformed batch is posted
    async with http.post(f"/v1beta/models/{GEMINI_MODEL}:batchGenerateContent", json=body) as resp:
        status, answer = resp.status, await resp.json()

    # Then it is refused in Google's format, and no batch exists
    assert status == 400
    assert answer["error"]["status"] == "INVALID_ARGUMENT"
    assert problem in answer["error"]["message"]
    async with http.get("/v1beta/batches") as resp:
        assert (await resp.json()) == {"operations": []}


async def test_unknown_batches_and_bad_page_tokens_are_refused(
    http: aiohttp.ClientSession,
) -> None:
    for method, path, status in [
        ("GET", "/v1beta/batches/nope", 404),
        ("POST", "/v1beta/batches/nope:cancel", 404),
        ("DELETE", "/v1/batches/nope", 404),
        ("POST", "/v1beta/batches/nope:explode", 404),
        ("GET", "/v1beta/batches?pageToken=x", 400),
        ("GET", "/v1beta/batches?pageSize=0", 400),
    ]:
        async with http.request(method, path, headers={"x-goog-api-key": "k"}) as resp:
            assert resp.status == status, (method, path)
            assert "error" in await resp.json()


async def upload_lines(client: genai.Client, lines: list[Any]) -> str:
    """Upload JSON Lines through the SDK's resumable upload; the file's name."""
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    uploaded = await client.aio.files.upload(
        file=io.BytesIO(data), config={"mime_type": "application/jsonl", "display_name": "in"}
    )
    assert uploaded.name is not None
    assert (uploaded.size_bytes, uploaded.display_name) == (len(data), "in")
    return uploaded.name


async def test_a_batch_from_an_uploaded_file_answers_in_a_file(
    client: genai.Client, http: aiohttp.ClientSession
) -> None:
    # Given an uploaded file of keyed requests, one of them failing
    request = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
    failing = {"contents": [{"role": "user", "parts": [{"text": "[[emulator:status=500]]"}]}]}
    name = await upload_lines(
        client, [{"key": "k1", "request": request}, {"key": "k2", "request": failing}]
    )
    assert (await client.aio.files.get(name=name)).state == types.FileState.ACTIVE

    # When a batch runs on it
    job = await client.aio.batches.create(model=GEMINI_MODEL, src=name)
    assert job.name is not None
    done = await finished(client, job.name)

    # Then its responses are a generated file of keyed lines, downloadable through the SDK
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest is not None
    assert done.dest.file_name is not None
    assert done.dest.inlined_responses is None
    data = await client.aio.files.download(file=done.dest.file_name)
    lines = [orjson.loads(line) for line in data.splitlines()]
    assert [line["key"] for line in lines] == ["k1", "k2"]
    assert lines[0]["response"]["candidates"][0]["content"]["parts"][0]["text"].startswith(
        f"[{GEMINI_MODEL}] hello there #"
    )
    assert lines[1]["error"]["code"] == 500
    assert (await read_stats(http))["calls"] == 2


async def test_a_file_with_a_line_that_is_not_a_keyed_request_is_refused(
    client: genai.Client,
) -> None:
    # Given a file whose second line has no key
    request = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    name = await upload_lines(client, [{"key": "a", "request": request}, {"request": request}])

    # When a batch is asked for on it, Then it is a 400 naming the line
    with pytest.raises(errors.ClientError) as caught:
        await client.aio.batches.create(model=GEMINI_MODEL, src=name)
    assert caught.value.code == 400
    assert "line 2" in str(caught.value.message)


async def test_uploads_are_checked_and_files_deleted(http: aiohttp.ClientSession) -> None:
    # An upload that does not start resumably, or a chunk at the wrong offset, is a 400
    async with http.post("/upload/v1beta/files", data=b"x") as resp:
        assert resp.status == 400
    start = {
        "X-Goog-Upload-Protocol": "resumable",
        "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": "3",
    }
    async with http.post("/upload/v1beta/files", json={"file": {}}, headers=start) as resp:
        url = resp.headers["X-Goog-Upload-URL"]
    chunk = {"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "1"}
    async with http.post(url, data=b"abc", headers=chunk) as resp:
        assert resp.status == 400
    # The right offset finalizes it; then it can be deleted, once
    chunk["X-Goog-Upload-Offset"] = "0"
    async with http.post(url, data=b"abc", headers=chunk) as resp:
        assert resp.headers["X-Goog-Upload-Status"] == "final"
        name = (await resp.json())["file"]["name"]
    for status in (200, 404):
        async with http.delete(f"/v1beta/{name}") as resp:
            assert resp.status == status


@pytest.mark.parametrize(
    ("end", "state"),
    [("failed", types.JobState.JOB_STATE_FAILED), ("expired", types.JobState.JOB_STATE_EXPIRED)],
)
async def test_a_batch_directive_ends_the_whole_job_unanswered(
    client: genai.Client, http: aiohttp.ClientSession, end: str, state: types.JobState
) -> None:
    # Given a batch one of whose requests asks the job to fail (or expire)
    job = await client.aio.batches.create(
        model=GEMINI_MODEL,
        src=[inline("fine", "a"), inline(f"doomed [[emulator:batch={end}]]", "b")],
    )
    assert job.name is not None
    name = job.name

    # When it has run, Then it ended so, with no answers, and nothing was generated
    ended = await poll(
        lambda: client.aio.batches.get(name=name),
        lambda seen: (
            seen.state not in (types.JobState.JOB_STATE_PENDING, types.JobState.JOB_STATE_RUNNING)
        ),
        timeout_s=10,
        what=f"{name} ended",
    )
    assert ended.state == state
    assert ended.dest is None or not ended.dest.inlined_responses
    assert (await read_stats(http))["calls"] == 0
