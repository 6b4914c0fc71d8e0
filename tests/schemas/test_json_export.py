"""The committed JSON Schemas are the contract publishers code against: keep them fresh."""

import json

from schemas.export import EXPORTED, JSON_DIR, render_schemas


def test_committed_json_schemas_are_fresh():
    rendered = render_schemas()
    stale = [
        name
        for name, text in rendered.items()
        if not (JSON_DIR / name).exists() or (JSON_DIR / name).read_text() != text
    ]

    assert not stale, f"stale JSON Schemas {stale}: run `promptbus schemas` and commit"
    assert sorted(p.name for p in JSON_DIR.glob("*.json")) == sorted(rendered)


def test_event_schemas_pin_their_schema_field():
    request = json.loads((JSON_DIR / "request_event.json").read_text())
    completion = json.loads((JSON_DIR / "completion_event.json").read_text())
    delta = json.loads((JSON_DIR / "completion_delta.json").read_text())

    assert request["properties"]["schema"]["const"] == "promptbus.request/v1"
    assert completion["properties"]["schema"]["const"] == "promptbus.completion/v1"
    assert {"job_id", "request"} <= set(request["required"])
    assert {"job_id", "correlation_id", "state", "finished_at"} <= set(completion["required"])
    assert delta["properties"]["schema"]["const"] == "promptbus.completion.delta/v1"
    assert {"job_id", "correlation_id", "run", "index", "text", "created"} <= set(delta["required"])
    assert set(EXPORTED) == {p.stem for p in JSON_DIR.glob("*.json")}


def test_the_chain_step_event_schema_pins_its_schema_and_states():
    step = json.loads((JSON_DIR / "chain_step.json").read_text())

    assert step["properties"]["schema"]["const"] == "promptbus.chain.step/v1"
    assert step["properties"]["type"]["const"] == "chain.step"
    required = {"job_id", "correlation_id", "tenant", "chain", "version", "step", "state", "at"}
    assert required <= set(step["required"])
    states = step["$defs"]["StepState"]["enum"]
    assert states == ["pending", "running", "succeeded", "failed", "skipped"]
