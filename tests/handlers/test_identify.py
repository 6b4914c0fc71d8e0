"""Identify: which requests share a cache key, and which never do."""

from typing import Any

import pytest

from handlers import identified, identify
from pipeline.errors import UnknownModel
from schemas import GenerateRequest
from tests.handlers.stage_support import Stages

PERSON = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def request(**fields: Any) -> GenerateRequest:
    """A request for the flash model, with `fields` changed."""
    return GenerateRequest.model_validate({"model": "flash", "prompt": "name a colour", **fields})


async def key_of(stages: Stages, req: GenerateRequest, tenant: str = "default") -> str:
    envelope = await identified(stages.envelope(req, tenant=tenant), stages.ctx)
    assert envelope.cache_key is not None
    return envelope.cache_key


async def test_equal_requests_get_equal_keys(stages: Stages) -> None:
    # Given two requests built apart, with the same content (schema keys in another order)
    first = request(params={"temperature": 0.2}, response_schema=PERSON)
    second = request(
        response_schema={
            "required": ["name"],
            "properties": PERSON["properties"],
            "type": "object",
        },
        params={"temperature": 0.2},
    )

    # When each is identified
    # Then both get the same key
    assert await key_of(stages, first) == await key_of(stages, second)


async def test_an_alias_and_its_provider_model_share_a_key(stages: Stages) -> None:
    # Given the same request by alias and by provider model
    by_alias = request(model="flash")
    by_name = request(model="gemini-2.5-flash")

    # Then they share the key, so either finds the other's cached answer
    assert await key_of(stages, by_alias) == await key_of(stages, by_name)


@pytest.mark.parametrize(
    ("change", "tenant"),
    [
        ({}, "another-tenant"),
        ({"model": "pro"}, "default"),
        ({"model": "gpt-4o-mini"}, "default"),
        ({"params": {"temperature": 0.9}}, "default"),
        ({"params": {"max_output_tokens": 5}}, "default"),
        ({"prompt": "name another colour"}, "default"),
        ({"response_schema": PERSON}, "default"),
        ({"system": "answer in French"}, "default"),
    ],
    ids=["tenant", "model", "provider", "temperature", "max-tokens", "prompt", "schema", "system"],
)
async def test_anything_that_shapes_the_answer_gives_another_key(
    stages: Stages, change: dict[str, Any], tenant: str
) -> None:
    # Given a request, and the same request with one thing that shapes its answer changed
    base = await key_of(stages, request())

    # When the changed one is identified
    changed = await key_of(stages, request(**change), tenant=tenant)

    # Then it gets another key: it never reads the other's cached answer
    assert changed != base


async def test_a_tenants_key_says_whose_it_is(stages: Stages) -> None:
    key = await key_of(stages, request(), tenant="acme")
    assert key.startswith("v1:acme:")


async def test_a_route_keys_as_the_route_not_as_any_of_its_deployments(stages: Stages) -> None:
    # Given the route `auto` (flash, 2.0 flash, then gpt-4o-mini) and each of its deployments
    route = stages.ctx.catalog.route("auto")
    deployments = [d.spec.provider_model for d in route.deployments]
    assert len(deployments) > 1

    # When the same prompt is identified on the route and on each deployment
    on_route = await key_of(stages, request(model="auto"))
    on_each = {await key_of(stages, request(model=name)) for name in deployments}

    # Then the route's key is its own: any deployment may answer it, so its answers are
    # not served as one model's, nor one model's as the route's
    assert on_route not in on_each
    assert on_route == await key_of(stages, request(model="auto"))
    assert on_route != await key_of(stages, request(model="balanced"))


def test_identify_keys_from_the_catalogue_alone(stages: Stages) -> None:
    # The function the ingress calls directly agrees with the stage
    catalog = stages.ctx.catalog
    assert identify(catalog, request(), "default") == identify(
        catalog, request(model="gemini-2.5-flash"), "default"
    )


async def test_an_unknown_model_is_unknown_model(stages: Stages) -> None:
    # Given a request for a model the catalogue does not list
    envelope = stages.envelope(request(model="gemini-9-ultra"))

    # When it is identified, Then it is refused as an unknown model, naming the field
    with pytest.raises(UnknownModel) as raised:
        await identified(envelope, stages.ctx)
    assert raised.value.field == "model"
    assert "gemini-9-ultra" in raised.value.message


async def test_an_envelope_that_has_its_key_keeps_it(stages: Stages) -> None:
    # Given an envelope identified already (a job's, re-driven)
    envelope = stages.envelope(request()).model_copy(update={"cache_key": "v1:default:kept"})

    # When it is identified again, Then its key stays as it was
    again = await identified(envelope, stages.ctx)
    assert again.cache_key == "v1:default:kept"
