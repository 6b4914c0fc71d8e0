"""The shipped chains, end to end: each model call through promptbus's path to the emulator."""

import json
from typing import Any

import pytest

from pipeline.catalog import ModelCatalog
from pipeline.chains import ChainCatalog
from pipeline.errors import InvalidConfig
from pipeline.templates import TemplateCatalog
from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory, Reply
from tests.support.settings import settings_for_test
from tests.support.sse import read_stream


async def invoke(gateway: Gateway, chain: str, variables: dict[str, Any], **extra: Any) -> Reply:
    """POST /v1/chains/{chain}/invoke."""
    body = json.dumps({"variables": variables, **extra})
    return await gateway.post_raw(f"/v1/chains/{chain}/invoke", body)


def steps_called(reply: Reply) -> list[str]:
    return [call["step"] for call in reply.body["calls"]]


async def test_the_chains_are_listed_with_their_inputs_and_steps(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway()

    listed = await gateway.get("/v1/chains")

    assert listed.status == 200
    ids = {chain["id"] for chain in listed.body["data"]}
    assert {"summarize_long", "classify_route", "plan_solve_verify"} <= ids
    one = await gateway.get("/v1/chains/classify_route")
    (info,) = one.body["data"]
    assert info["inputs"] == ["message"]
    assert {"name": "answer", "kind": "branch"} in info["steps"]
    missing = await gateway.get("/v1/chains/nope")
    assert missing.status == 404
    assert missing.body["error"]["type"] == "unknown_chain"


async def test_classify_then_route_runs_only_the_chosen_route(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway = await start_gateway()

    # When the classifier says "billing" (the emulator is told to, by a directive)
    reply = await invoke(
        gateway, "classify_route", {"message": "I was charged twice [[emulator:say=Billing.]]"}
    )

    # Then the billing prompt answered it, and no other route was called
    assert reply.status == 200, reply.body
    assert reply.body["output"]["label"] == "Billing."
    assert steps_called(reply) == ["label", "billing_answer"]
    assert await emulator.calls() == 2
    # And an unexpected label goes to the general route
    other = await invoke(gateway, "classify_route", {"message": "hi [[emulator:say=weather]]"})
    assert steps_called(other) == ["label", "general_answer"]


async def test_plan_solve_verify_accepts_a_passing_answer_without_revising(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway()

    reply = await invoke(
        gateway, "plan_solve_verify", {"question": "What is 2+2? [[emulator:set=verdict:pass]]"}
    )

    assert reply.status == 200, reply.body
    assert steps_called(reply) == ["plan", "solution", "check"]
    output = reply.body["output"]
    assert output["verified"] is True
    assert output["revised"] is False
    assert output["answer"] == reply.body["steps"]["solution"]


async def test_plan_solve_verify_revises_once_and_says_it_was_not_verified(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway()

    # When every check fails
    reply = await invoke(
        gateway, "plan_solve_verify", {"question": "Prove P=NP. [[emulator:set=verdict:fail]]"}
    )

    # Then one revision was made and checked again, and no more
    assert reply.status == 200, reply.body
    assert steps_called(reply) == ["plan", "solution", "check", "revision", "recheck"]
    output = reply.body["output"]
    assert output["verified"] is False
    assert output["revised"] is True


async def test_a_long_document_is_summarised_by_parts_and_a_changed_part_is_all_recomputed(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway = await start_gateway()
    parts = [f"Section {n}. " + " ".join(f"fact{n}-{i}" for i in range(500)) for n in range(3)]
    document = "\n\n".join(parts)

    # When a document of three sections is summarised
    first = await invoke(gateway, "summarize_long", {"document": document})

    # Then each chunk had a summary call, and one more combined them
    assert first.status == 200, first.body
    chunks = len(first.body["steps"]["chunks"])
    assert chunks >= 3
    assert steps_called(first).count("chunk_summary") == chunks
    assert steps_called(first)[-1] == "summary"
    assert await emulator.calls() == chunks + 1
    assert first.body["usage"]["calls"] == chunks + 1

    # When only the last section changes
    changed = document.replace("fact2-499", "fact2-changed")
    second = await invoke(gateway, "summarize_long", {"document": changed})

    # Then only the changed chunk and the final summary are new calls: the rest are hits
    assert second.status == 200, second.body
    hits = [call for call in second.body["calls"] if call["cache_hit"]]
    assert len(hits) == chunks - 1
    assert await emulator.calls() == chunks + 1 + 2
    assert second.body["usage"]["cache_hits"] == chunks - 1


async def test_missing_and_unknown_variables_are_422s_that_name_them(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway = await start_gateway()

    missing = await invoke(gateway, "classify_route", {})
    unknown = await invoke(gateway, "classify_route", {"message": "x", "mood": "sad"})

    assert missing.status == 422
    assert missing.body["error"]["field"] == "variables.message"
    assert unknown.status == 422
    assert unknown.body["error"]["field"] == "variables.mood"
    assert await emulator.calls() == 0


async def test_a_failed_step_fails_the_chain_naming_the_step(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway()

    reply = await invoke(gateway, "classify_route", {"message": "x [[emulator:status=400]]"})

    assert reply.status >= 400
    assert "step 'label'" in reply.body["error"]["message"]


CUSTOM = {"about": "tests.support.custom_chains:make_about"}


async def test_a_custom_python_chain_is_listed_invoked_and_cached_like_a_config_one(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway = await start_gateway(custom_chains=CUSTOM)

    (info,) = (await gateway.get("/v1/chains/about")).body["data"]
    first = await invoke(gateway, "about", {"topic": "cats"})
    again = await invoke(gateway, "about", {"topic": "cats"})
    refused = await invoke(gateway, "about", {"subject": "cats"})

    assert info["inputs"] == ["topic"]
    assert info["description"] == "Tell what is known about a topic, in one model call."
    assert first.status == 200, first.body
    assert "Tell me about cats" in first.body["output"]
    assert [c["cache_hit"] for c in first.body["calls"] + again.body["calls"]] == [False, True]
    assert await emulator.calls() == 1
    assert refused.status == 422
    assert refused.body["error"]["field"] == "variables"


def test_a_custom_chain_that_is_no_runnable_stops_start_up() -> None:
    settings = settings_for_test(
        custom_chains={"bad": "tests.support.custom_chains:not_a_runnable"}
    )
    with pytest.raises(InvalidConfig, match=r"custom chain 'bad'.*not a Runnable"):
        ChainCatalog.from_directory(
            settings.chains_dir,
            ModelCatalog.from_file(settings.models_file),
            TemplateCatalog.from_directory(settings.templates_dir),
            settings.custom_chains,
        )


async def test_a_streamed_invocation_sends_steps_deltas_and_the_result(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway()
    question = "What is 2+2? [[emulator:set=verdict:pass, chunks=4]]"
    body = {"variables": {"question": question}, "stream": True}

    stream = await read_stream(
        gateway.session, gateway.url + "/v1/chains/plan_solve_verify/invoke", body
    )

    assert stream.status == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    steps = [(e.data["step"], e.data["state"]) for e in stream.named("step")]
    assert steps == [
        ("plan", "started"),
        ("plan", "finished"),
        ("solution", "started"),
        ("solution", "finished"),
        ("check", "started"),
        ("check", "finished"),
        ("accepted", "finished"),
        ("result", "finished"),
    ]
    (done,) = stream.named("done")
    result = done.data
    assert stream.events[-1].name == "done"
    # The answer's deltas, joined, are the answer; it came in several
    solution = [d.data["text"] for d in stream.named("delta") if d.data["step"] == "solution"]
    assert len(solution) > 1
    assert "".join(solution) == result["output"]["answer"] == result["steps"]["solution"]
    assert result["output"]["verified"] is True
    assert [call["step"] for call in result["calls"]] == ["plan", "solution", "check"]


async def test_a_streamed_invocation_that_fails_ends_with_an_error_event(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway()
    body = {"variables": {"message": "x [[emulator:status=400]]"}, "stream": True}

    stream = await read_stream(
        gateway.session, gateway.url + "/v1/chains/classify_route/invoke", body
    )

    (error,) = stream.named("error")
    assert "step 'label'" in error.data["error"]["message"]
    assert not stream.named("done")
