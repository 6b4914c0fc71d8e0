"""Usage entries built from answers and failures: every field of the caller carried over."""

from pipeline.ledger import COALESCED, ERROR, OK, Caller, answered, failed

WHO = Caller(
    tenant="acme",
    key_id="key_1",
    request_id="req_1",
    surface="openai",
    model="flash",
    streamed=True,
    job_id="job_1",
    template_id="greet",
    template_version="3",
    chain_id="summarize_long",
    chain_version=2,
    chain_step="reduce",
)


def test_the_caller_under_test_sets_every_field_away_from_its_default():
    # Else a field `answered` forgot would still compare equal (both at the default).
    assert all(getattr(WHO, name) != Caller._field_defaults.get(name) for name in Caller._fields)


def _callers_fields(entry: object) -> dict[str, object]:
    return {name: getattr(entry, name) for name in Caller._fields}


def test_an_answers_entry_carries_every_field_of_its_caller():
    entry = answered(WHO, {}, 1.5)
    assert _callers_fields(entry) == WHO._asdict()
    assert (entry.status, entry.latency_ms) == (OK, 1.5)


def test_a_failures_entry_carries_every_field_of_its_caller():
    entry = failed(WHO, "upstream_timeout", 2.0)
    assert _callers_fields(entry) == WHO._asdict()
    assert (entry.status, entry.error_type) == (ERROR, "upstream_timeout")


def test_a_generated_answer_costs_what_it_cost_and_saves_nothing():
    response = {
        "provider": "gemini",
        "provider_model": "gemini-2.5-flash",
        "usage": {"input_tokens": 12, "output_tokens": 40},
        "cost": {"total_usd": 0.25},
        "cache": {"hit": False, "coalesced": False},
        "routing": {"deployment": "flash-main"},
    }
    entry = answered(WHO, response, 1.0)
    assert (entry.cost_usd, entry.saved_usd, entry.cache_tier) == (0.25, 0.0, None)
    assert (entry.input_tokens, entry.output_tokens) == (12, 40)
    assert (entry.provider, entry.provider_model, entry.deployment) == (
        "gemini",
        "gemini-2.5-flash",
        "flash-main",
    )


def test_a_hit_or_a_coalesced_answer_costs_nothing_and_saves_what_it_cost():
    hit = answered(WHO, {"cost": {"total_usd": 0.25}, "cache": {"hit": True, "tier": "l1"}}, 1.0)
    assert (hit.cost_usd, hit.saved_usd, hit.cache_tier) == (0.0, 0.25, "l1")
    shared = answered(WHO, {"cost": {"total_usd": 0.25}, "cache": {"coalesced": True}}, 1.0)
    assert (shared.cost_usd, shared.saved_usd, shared.cache_tier) == (0.0, 0.25, COALESCED)
