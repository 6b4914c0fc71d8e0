"""The Gemini Batch bridge end to end: google-genai against the emulator's Batch API."""

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from google.genai import types

from pipeline.catalog import ModelCatalog
from pipeline.emulator import EmulatorConfig, RunningEmulator
from pipeline.providers.batch_outcomes import BatchItem, BridgeState, PollPolicy
from pipeline.providers.gemini_batch import GeminiBatchClient
from pipeline.providers.setup import gemini_batch_client
from schemas import GenerateRequest, Message, Role, SafetySetting, Tool, ToolCall
from tests.support.emulator import read_stats, running
from tests.support.genai_clients import genai_client
from tests.support.settings import settings_for_test
from tests.support.tcp_proxy import Proxy

TOOL_TURNS = GenerateRequest(
    model="flash",
    messages=[
        Message(role=Role.USER, content="q"),
        Message(role=Role.ASSISTANT, tool_calls=[ToolCall(id="c", name="f")]),
        Message(role=Role.TOOL, content="r", tool_call_id="c"),
    ],
)
FAST = PollPolicy(initial_s=0.01, max_s=0.05, multiplier=2.0, deadline_s=30)


def item(custom_id: str, prompt: str, model: str = "flash", **fields: object) -> BatchItem:
    return BatchItem(custom_id, GenerateRequest(model=model, prompt=prompt, **fields))


@pytest.fixture
def catalog() -> ModelCatalog:
    return ModelCatalog.from_file(settings_for_test().models_file)


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with running(EmulatorConfig(batch_step_ms=50)) as emulator:
        yield emulator


@pytest.fixture
async def http(emu: RunningEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emu.base_url) as session:
        yield session


@pytest.fixture
async def bridge(emu: RunningEmulator, catalog: ModelCatalog) -> AsyncIterator[GeminiBatchClient]:
    client = gemini_batch_client(settings_for_test(), catalog, emu.base_url, FAST)
    yield client
    await client.aclose()


async def test_each_item_gets_its_answer_priced_at_the_batch_price(
    bridge: GeminiBatchClient, catalog: ModelCatalog, http: aiohttp.ClientSession
) -> None:
    # Given items for one Gemini model, named by alias and by provider model
    items = [
        item("first", "hello there", system="be brief"),
        item("second", "one two three four", model="gemini-2.5-flash"),
        item("third", "count", params={"max_output_tokens": 1}),
    ]

    # When they run as one provider batch
    result = await bridge.run(items)

    # Then every item has its answer, in order, under its custom_id
    assert result.state is BridgeState.SUCCEEDED
    assert (result.completed, result.failed) == (3, 0)
    assert [o.custom_id for o in result.outcomes] == ["first", "second", "third"]
    first = result.outcomes[0].answer
    assert first is not None
    assert first.text.startswith("[gemini-2.5-flash] hello there #")
    assert first.finish_reason == "stop"
    assert (first.usage.input_tokens, first.usage.output_tokens) == (4, 4)
    third = result.outcomes[2].answer
    assert third is not None
    assert (third.finish_reason, third.usage.output_tokens) == ("max_tokens", 1)

    # And each is priced at the batch price: half of what the same usage costs interactively
    spec = catalog.resolve("flash")
    for outcome in result.outcomes:
        assert outcome.answer is not None
        assert outcome.answer.cost == spec.batch_cost(outcome.answer.usage)
        assert outcome.answer.cost.total_usd == pytest.approx(
            spec.cost(outcome.answer.usage).total_usd / 2
        )

    # And the emulator made one call an item
    assert (await read_stats(http))["calls"] == 3


async def test_a_failed_or_blocked_item_gets_its_error_and_the_rest_their_answers(
    bridge: GeminiBatchClient,
) -> None:
    # Given a batch where one item fails upstream and one is blocked for safety
    items = [
        item("ok", "fine"),
        item("limited", "[[emulator:status=429]] busy"),
        item("rejected", "[[emulator:status=400]] bad"),
        item("blocked", "[[emulator:block=safety]] unsafe"),
    ]

    # When the batch runs
    result = await bridge.run(items)

    # Then each failure is classified as the sync path classifies it, with its HTTP status
    by_id = {o.custom_id: o for o in result.outcomes}
    assert by_id["ok"].answer is not None
    assert by_id["ok"].error is None
    limited, rejected, blocked = by_id["limited"], by_id["rejected"], by_id["blocked"]
    assert limited.error is not None
    assert (limited.error.type, limited.error.retryable, limited.status_code) == (
        "upstream_unavailable",
        True,
        503,
    )
    assert rejected.error is not None
    assert (rejected.error.type, rejected.status_code) == ("upstream_rejected", 502)
    assert blocked.error is not None
    assert (blocked.error.type, blocked.error.finish_reason) == ("content_blocked", "safety")
    assert (result.completed, result.failed) == (1, 3)


async def test_a_structured_item_asks_for_json_mode(bridge: GeminiBatchClient) -> None:
    # Given an item with a response schema
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}

    # When it runs, Then the answer is a JSON document of that schema (Gemini's JSON mode)
    result = await bridge.run([item("json", "a number please", response_schema=schema)])
    answer = result.outcomes[0].answer
    assert answer is not None
    assert answer.text.startswith('{"n":')


async def test_a_cancelled_batch_gives_every_unanswered_item_batch_cancelled(
    emu: RunningEmulator, catalog: ModelCatalog, http: aiohttp.ClientSession
) -> None:
    # Given a submitted batch
    client = gemini_batch_client(settings_for_test(), catalog, emu.base_url, FAST)
    try:
        submitted = await client.submit([item("a", "one"), item("b", "two")])

        # When it is cancelled before it runs
        await client.cancel(submitted.name)
        result = await client.wait(submitted)
    finally:
        await client.aclose()

    # Then the bridge reports it cancelled, each item with a batch_cancelled error and no
    # HTTP status, and no upstream call was made
    assert result.state is BridgeState.CANCELLED
    assert [(o.error.type if o.error else None) for o in result.outcomes] == [
        "batch_cancelled",
        "batch_cancelled",
    ]
    assert {o.status_code for o in result.outcomes} == {None}
    assert (await read_stats(http))["calls"] == 0


async def test_past_the_deadline_the_job_is_cancelled_and_its_items_expire(
    catalog: ModelCatalog,
) -> None:
    # Given an emulator whose batches take a minute, and a bridge that waits a tenth of a second
    async with running(EmulatorConfig(batch_step_ms=60_000)) as slow:
        policy = PollPolicy(initial_s=0.02, max_s=0.05, deadline_s=0.1)
        client = gemini_batch_client(settings_for_test(), catalog, slow.base_url, policy)
        try:
            # When the batch runs
            result = await client.run([item("a", "one")])
        finally:
            await client.aclose()

        # Then it expired, its item with batch_expired
        assert result.state is BridgeState.EXPIRED
        error = result.outcomes[0].error
        assert error is not None
        assert error.type == "batch_expired"

        # And the Gemini job was cancelled, not left running
        async with genai_client(slow.base_url, "v1beta") as sdk:
            job = await sdk.aio.batches.get(name=result.name)
        assert job.state == types.JobState.JOB_STATE_CANCELLED


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        ([], "1 to"),
        ([item("a", "x"), item("a", "y")], "repeated: a"),
        ([item("a", "x"), item("b", "y", model="pro")], "one model"),
        ([item("a", "x", model="gpt-mini")], "go to Gemini"),
        ([item("a", "x", tools=[Tool(name="f")])], "tools are not supported"),
        ([BatchItem("a", TOOL_TURNS)], "tool calls and tool results are not supported"),
        ([item("a", "x", model="nope")], "unknown model"),
    ],
)
async def test_a_batch_the_bridge_cannot_send_is_refused_before_anything_is_sent(
    bridge: GeminiBatchClient,
    http: aiohttp.ClientSession,
    items: list[BatchItem],
    problem: str,
) -> None:
    # When a batch with a problem is submitted, Then it is refused, naming the problem
    with pytest.raises(Exception) as caught:  # noqa: PT011  # ValidationFailed or UnknownModel
        await bridge.submit(items)
    assert problem in str(caught.value)

    # And no Gemini batch was created
    async with http.get("/v1beta/batches") as resp:
        assert (await resp.json()) == {"operations": []}


def test_polling_backs_off_exponentially_up_to_its_bound() -> None:
    delays = PollPolicy(initial_s=1, max_s=5, multiplier=2).delays()
    assert [next(delays) for _ in range(5)] == [1, 2, 4, 5, 5]


@pytest.mark.parametrize(
    "policy",
    [
        {"initial_s": 0},
        {"initial_s": 10, "max_s": 5},
        {"multiplier": 0.5},
        {"deadline_s": 0},
        {"deadline_s": 8 * 24 * 3600},
    ],
)
def test_a_poll_policy_that_never_waits_or_never_ends_is_refused(policy: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="poll"):
        PollPolicy(**policy)


async def test_the_settings_set_the_poll_policy(catalog: ModelCatalog) -> None:
    # Given settings with a short poll and deadline, and an emulator slower than the deadline
    settings = settings_for_test(
        gemini_batch_poll_initial_s=0.01, gemini_batch_poll_max_s=0.02, gemini_batch_deadline_s=0.05
    )
    async with running(EmulatorConfig(batch_step_ms=60_000)) as slow:
        client = gemini_batch_client(settings, catalog, slow.base_url)
        try:
            # When a batch runs, Then it expires at the settings' deadline
            result = await client.run([item("a", "one")])
        finally:
            await client.aclose()
    assert result.state is BridgeState.EXPIRED


async def test_the_bridge_goes_where_the_gemini_provider_goes(catalog: ModelCatalog) -> None:
    # Given settings with a Gemini base URL of their own, and settings with none
    pointed = settings_for_test(gemini_base_url="http://127.0.0.1:9")

    # Then the bridge follows the base URL, or else the built-in emulator's
    on_url = gemini_batch_client(pointed, catalog, None)
    on_emulator = gemini_batch_client(settings_for_test(), catalog, "http://127.0.0.1:8/")
    assert on_url.base_url == "http://127.0.0.1:9"
    assert on_emulator.base_url == "http://127.0.0.1:8"
    await on_url.aclose()
    await on_emulator.aclose()


async def test_a_file_batch_answers_as_the_inline_batch_answers(
    bridge: GeminiBatchClient, http: aiohttp.ClientSession
) -> None:
    # Given items using every field a provider batch sends
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    safety = [SafetySetting(category="HARM_CATEGORY_HARASSMENT", threshold="BLOCK_NONE")]
    items = [
        item("plain", "hello there", system="be brief"),
        item("params", "one two three", params={"max_output_tokens": 2, "temperature": 0.1}),
        item("json", "a number", response_schema=schema, safety_settings=safety),
        item("failing", "[[emulator:status=503]]"),
    ]

    # When they run inline and then as an uploaded file
    inline = await bridge.run(items, source="inline")
    in_file = await bridge.run(items, source="file")

    # Then the file batch gives each item the same outcome: the emulator saw the same
    # requests (its answers hash the whole request), joined back on custom_id
    assert in_file.state is BridgeState.SUCCEEDED
    assert [o.custom_id for o in in_file.outcomes] == [o.custom_id for o in inline.outcomes]
    assert [o.answer for o in in_file.outcomes] == [o.answer for o in inline.outcomes]
    assert [o.error for o in in_file.outcomes] == [o.error for o in inline.outcomes]
    assert in_file.outcomes[3].status_code == 503
    assert (await read_stats(http))["calls"] == 8


async def test_polling_rides_out_a_provider_it_cannot_reach_for_a_while(
    emu: RunningEmulator, catalog: ModelCatalog
) -> None:
    # Given a bridge reaching the emulator through a proxy, and a submitted batch
    proxy = Proxy((emu.host, emu.port))
    await proxy.open()
    url = f"http://127.0.0.1:{proxy.port}"
    client = gemini_batch_client(settings_for_test(), catalog, url, FAST)
    try:
        submitted = await client.submit([item("a", "one")])

        # When the provider cannot be reached while the bridge polls
        await proxy.cut()
        waiting = asyncio.create_task(client.wait(submitted))
        await asyncio.sleep(0.2)  # several polls fail meanwhile
        assert not waiting.done()

        # Then polling goes on, and once it is reachable again the batch's answers arrive
        await proxy.open()
        result = await waiting
    finally:
        await proxy.cut()
        await client.aclose()
    assert result.state is BridgeState.SUCCEEDED
    assert result.completed == 1
