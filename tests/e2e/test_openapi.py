"""GET /openapi.json: a valid OpenAPI 3.1 document of every route, and answers that match it."""

import json
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from pipeline.ingress import create_app
from tests.support.gateway import Gateway
from tests.support.settings import settings_for_test
from tests.support.sse import read_stream

URI = "urn:promptbus:openapi"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class Documented:
    """The served document, and checks of bodies against the schemas it gives them."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._registry = Registry().with_resource(URI, DRAFT202012.create_resource(document))

    def check(
        self, method: str, path: str, status: int, body: Any, *, event: str | None = None
    ) -> None:
        """`body` matches what `path` documents for `status` (or, given one, that event)."""
        responses = self.document["paths"][path][method.lower()]["responses"]
        key = str(status) if status < 400 or str(status) in responses else "default"
        assert key in responses, f"{method} {path} documents no {status}"
        parts = ["paths", path, method.lower(), "responses", key, "content"]
        if event is None:
            parts += ["application/json", "schema"]
        else:
            parts += ["text/event-stream", "x-events", event]
        pointer = "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)
        schema = {"$ref": f"{URI}#/{quote(pointer, safe='/~')}"}
        Draft202012Validator(schema, registry=self._registry).validate(body)


@pytest.fixture
async def documented(gateway: Gateway) -> Documented:
    reply = await gateway.get("/openapi.json")
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    return Documented(reply.body)


async def test_the_served_document_is_valid_openapi_3_1(gateway: Gateway):
    reply = await gateway.get("/openapi.json")

    assert reply.status == 200
    assert reply.body["openapi"] == "3.1.0"
    validate(reply.body, cls=OpenAPIV31SpecValidator)
    # Built once per app: a second request gets the same document.
    assert (await gateway.get("/openapi.json")).body == reply.body


async def test_every_route_served_is_documented_and_every_documented_route_served(
    documented: Documented,
):
    # Given the routes the app serves (HEAD aside: aiohttp adds one to every GET)
    app = create_app(settings_for_test())
    served = {(route.method, route.resource.canonical) for route in app.router.routes()}
    served = {(m, p) for m, p in served if m != "HEAD" or ("GET", p) not in served}

    # When compared with the document's operations
    paths = documented.document["paths"]
    listed = {(m.upper(), p) for p, ops in paths.items() for m in ops if m in METHODS}

    # Then each has the other's, every one
    assert served - listed == set(), "routes with no entry in pipeline/ingress/openapi/operations"
    assert listed - served == set(), "entries in the document that no route serves"


async def test_generate_answers_match_their_schemas(gateway: Gateway, documented: Documented):
    # A plain answer, a streamed one, and a bad request's error body
    plain = await gateway.generate({"model": "flash", "prompt": "documented"})
    streamed = await read_stream(
        gateway.session,
        gateway.url + "/v1/generate",
        {"model": "flash", "prompt": "documented, streamed", "stream": True},
    )
    invalid = await gateway.generate({"model": "flash"})

    assert plain.status == 200, plain.body
    documented.check("POST", "/v1/generate", 200, plain.body)
    assert streamed.status == 200
    assert {e.name for e in streamed.events} == {"delta", "done"}
    for event in streamed.events:
        assert event.name is not None
        documented.check("POST", "/v1/generate", 200, event.data, event=event.name)
    assert invalid.status == 422
    documented.check("POST", "/v1/generate", 422, invalid.body)


async def test_job_and_webhook_answers_match_their_schemas(
    gateway: Gateway, documented: Documented
):
    submitted = await gateway.post_raw("/v1/jobs", '{"model": "flash", "prompt": "job"}')
    assert submitted.status == 202, submitted.body
    job = f"/v1/jobs/{submitted.body['id']}"
    created = await gateway.post_raw("/v1/webhooks", '{"url": "http://127.0.0.1:9/hook"}')
    assert created.status == 201, created.body
    endpoint = f"/v1/webhooks/{created.body['id']}"

    documented.check("POST", "/v1/jobs", 202, submitted.body)
    documented.check("GET", "/v1/jobs/{job_id}", 200, (await gateway.get(job)).body)
    documented.check("GET", "/v1/jobs", 200, (await gateway.get("/v1/jobs")).body)
    documented.check("GET", "/v1/jobs/{job_id}", 404, (await gateway.get(job + "x")).body)
    documented.check("POST", "/v1/webhooks", 201, created.body)
    documented.check("GET", "/v1/webhooks", 200, (await gateway.get("/v1/webhooks")).body)
    documented.check("GET", "/v1/webhooks/{endpoint_id}", 200, (await gateway.get(endpoint)).body)
    rotated = await gateway.post_raw(endpoint + "/rotate-secret", "")
    documented.check("POST", "/v1/webhooks/{endpoint_id}/rotate-secret", 200, rotated.body)
    attempts = await gateway.get(endpoint + "/attempts")
    documented.check("GET", "/v1/webhooks/{endpoint_id}/attempts", 200, attempts.body)


async def test_the_other_answers_match_their_schemas(gateway: Gateway, documented: Documented):
    chat = {"model": "flash", "messages": [{"role": "user", "content": "documented"}]}
    completion = await gateway.post_raw("/v1/chat/completions", json.dumps(chat))
    unknown = await gateway.post_raw("/v1/chat/completions", json.dumps({**chat, "model": "nope"}))

    assert completion.status == 200, completion.body
    documented.check("POST", "/v1/chat/completions", 200, completion.body)
    assert unknown.status == 404
    documented.check("POST", "/v1/chat/completions", 404, unknown.body)
    for path in ("/v1/models", "/v1/templates", "/healthz", "/readyz", "/openapi.json"):
        reply = await gateway.get(path)
        documented.check("GET", path, reply.status, reply.body)
    documented.check(
        "GET", "/v1/models/{model_id}", 200, (await gateway.get("/v1/models/flash")).body
    )


async def test_gemini_answers_match_their_schemas(gateway: Gateway, documented: Documented):
    ask = {"contents": [{"role": "user", "parts": [{"text": "documented"}]}]}
    base = "/v1beta/models/{model}"
    answer = await gateway.post_raw("/v1beta/models/flash:generateContent", json.dumps(ask))
    blocked = await gateway.post_raw(
        "/v1/models/flash:generateContent",
        json.dumps({"contents": [{"parts": [{"text": "x [[emulator:block=prompt]]"}]}]}),
    )
    chunks = await gateway.post_raw("/v1beta/models/flash:streamGenerateContent", json.dumps(ask))
    streamed = await read_stream(
        gateway.session, gateway.url + "/v1beta/models/flash:streamGenerateContent?alt=sse", ask
    )
    counted = await gateway.post_raw("/v1beta/models/flash:countTokens", json.dumps(ask))
    unknown = await gateway.post_raw("/v1beta/models/nope:generateContent", json.dumps(ask))

    documented.check("POST", base + ":generateContent", 200, answer.body)
    documented.check("POST", "/v1/models/{model}:generateContent", 200, blocked.body)
    documented.check("POST", base + ":streamGenerateContent", 200, chunks.body)
    for event in streamed.events:
        documented.check("POST", base + ":streamGenerateContent", 200, event.data, event="message")
    documented.check("POST", base + ":countTokens", 200, counted.body)
    documented.check("POST", base + ":generateContent", 404, unknown.body)
    documented.check("GET", "/v1beta/models", 200, (await gateway.get("/v1beta/models")).body)
    documented.check("GET", base, 200, (await gateway.get("/v1beta/models/flash")).body)


async def test_file_answers_match_their_schemas(gateway: Gateway, documented: Documented):
    form = aiohttp.FormData()
    form.add_field("purpose", "batch")
    form.add_field("file", b'{"custom_id": "a"}\n', filename="in.jsonl")
    async with gateway.session.post(gateway.url + "/v1/files", data=form) as resp:
        assert resp.status == 200
        uploaded = await resp.json()

    documented.check("POST", "/v1/files", 200, uploaded)
    listed = await gateway.get("/v1/files?limit=1&order=asc&purpose=batch")
    assert [f["id"] for f in listed.body["data"]] == [uploaded["id"]]
    documented.check("GET", "/v1/files", 200, listed.body)
    bad = await gateway.get("/v1/files?order=sideways")
    assert bad.status == 400
    documented.check("GET", "/v1/files", 400, bad.body)
