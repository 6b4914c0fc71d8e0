"""Several processes without Redis: the routes that need shared state say so, the rest serve."""

import pytest

from tests.support.gateway import GatewayFactory

ROUTES = [
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/job_1"),
    ("GET", "/v1/jobs/job_1/events"),
    ("DELETE", "/v1/jobs/job_1"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks"),
    ("GET", "/v1/webhooks/ep_1"),
    ("DELETE", "/v1/webhooks/ep_1"),
    ("POST", "/v1/webhooks/ep_1/rotate-secret"),
    ("GET", "/v1/webhooks/ep_1/attempts"),
    ("POST", "/v1/webhooks/ep_1/replay/job_1"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_job_and_webhook_routes_answer_jobs_unavailable(
    start_gateway: GatewayFactory, method: str, path: str
):
    # Given one of two processes with no Redis
    gateway = await start_gateway(processes=2)

    # When a caller uses a route that needs a job store every process shares
    async with gateway.session.request(
        method, gateway.url + path, json={"model": "flash", "prompt": "p", "url": "http://x/"}
    ) as resp:
        body = await resp.json()

    # Then it is told why it cannot work and what to set, not a 404
    assert resp.status == 503
    assert body["error"]["type"] == "jobs_unavailable"
    assert body["error"]["retryable"] is False
    assert "PROMPTBUS_REDIS_URL" in body["error"]["message"]
    assert "Retry-After" not in resp.headers


async def test_the_fast_path_and_health_still_serve(start_gateway: GatewayFactory):
    gateway = await start_gateway(processes=2)

    answer = await gateway.generate({"model": "flash", "prompt": "still served"})
    health = await gateway.get("/healthz")
    unknown = await gateway.get("/v1/nothing")

    assert answer.status == 200, answer.body
    assert health.status == 200
    assert unknown.status == 404
