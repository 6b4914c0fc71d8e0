"""Cache keys change with everything that shapes an answer, and nothing else."""

from pipeline.cache.keys import cache_key
from schemas import GenerateRequest

MODEL = "gemini-2.5-flash"


def key(tenant: str = "default", model: str = "gemini-2.5-flash", **body) -> str:
    body.setdefault("model", "flash")
    if "messages" not in body:
        body.setdefault("prompt", "hi")
    request = GenerateRequest.model_validate(body)
    return cache_key(request, tenant=tenant, provider="gemini", provider_model=model)


def test_key_ignores_cache_controls():
    assert key() == key(cache={"ttl": 5, "no_store": True, "max_age": 3})


def test_unset_params_equal_absent_params():
    assert key() == key(params={}) == key(params={"temperature": None})


def test_key_changes_with_tenant_model_text_and_params():
    base = key()
    others = {
        key(tenant="acme"),
        key(model="gemini-2.5-pro"),
        key(prompt="hi!"),
        key(system="sys"),
        key(params={"temperature": 0.0}),
        key(params={"max_output_tokens": 1}),
        key(params={"stop": ["a"]}),
        key(params={"stop": ["a", "b"]}),
    }
    assert base not in others
    assert len(others) == 8


def test_tenant_is_visible_in_the_key_namespace():
    assert key(tenant="acme").startswith("v1:acme:")


def test_messages_role_matters():
    as_user = key(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    as_assistant = key(
        messages=[{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]
    )
    assert as_user != as_assistant


def test_response_schema_is_keyed_canonically():
    schema = {"type": "object", "properties": {"a": {"type": "string", "minLength": 1}}}
    reordered = {"properties": {"a": {"minLength": 1, "type": "string"}}, "type": "object"}

    assert key(response_schema=schema) == key(response_schema=reordered)
    assert key(response_schema=schema) != key()
    assert key(response_schema=schema) != key(response_schema={**schema, "required": ["a"]})


def test_a_request_without_safety_settings_keeps_the_key_it_had():
    # The key of this request before safety settings existed (computed on that code).
    request = GenerateRequest.model_validate(
        {
            "model": "flash",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ],
            "params": {"temperature": 0.5},
            "response_schema": {"type": "object"},
        }
    )
    before = "v1:default:99cc591793c20578a0dc5a6f834a93c551580840c8b38989095b0a8d67ac7669"

    assert cache_key(request, tenant="default", provider="gemini", provider_model=MODEL) == before
    assert key() == key(safety_settings=None) == key(safety_settings=[])


def test_safety_settings_are_keyed_in_any_order():
    harassment = {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}
    hate = {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}

    assert key(safety_settings=[harassment, hate]) == key(safety_settings=[hate, harassment])
    assert key(safety_settings=[harassment]) != key()
    assert key(safety_settings=[harassment]) != key(
        safety_settings=[{**harassment, "threshold": "BLOCK_ONLY_HIGH"}]
    )
