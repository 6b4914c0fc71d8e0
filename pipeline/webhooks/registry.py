"""Registered webhook endpoints, their signing secrets, and every delivery attempt."""

import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol

from pipeline.webhooks.signing import new_secret
from schemas.webhooks import Attempt, Endpoint, EndpointCreate, EventType

ROTATION_OVERLAP_S = 24 * 3600
_ATTEMPTS_KEPT = 200


class WebhookRegistry(Protocol):
    """Where endpoints and attempts live: memory by default, Redis in production."""

    async def create(self, tenant: str, spec: EndpointCreate) -> tuple[Endpoint, str]: ...

    async def get(self, endpoint_id: str) -> Endpoint | None: ...

    async def endpoints(self, tenant: str) -> list[Endpoint]: ...

    async def delete(self, endpoint_id: str) -> bool: ...

    async def rotate(self, endpoint_id: str) -> str | None: ...

    async def secrets(self, endpoint_id: str) -> list[str]: ...

    async def subscribers(self, tenant: str, event: EventType) -> list[Endpoint]: ...

    async def disable(self, endpoint_id: str, reason: str) -> None: ...

    async def failed(self, endpoint_id: str, at: float) -> Endpoint | None: ...

    async def succeeded(self, endpoint_id: str) -> None: ...

    async def record(self, attempt: Attempt) -> None: ...

    async def attempts_for_endpoint(self, endpoint_id: str) -> list[Attempt]: ...

    async def attempts_for_job(self, job_id: str) -> list[Attempt]: ...


class MemoryWebhookRegistry:
    """The registry of the embedded default; attempt logs are bounded per key."""

    def __init__(self, *, max_jobs_tracked: int, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._endpoints: dict[str, Endpoint] = {}
        # Newest secret first; older ones sign too until they expire.
        self._secrets: dict[str, list[tuple[str, float | None]]] = {}
        self._by_endpoint: dict[str, deque[Attempt]] = {}
        self._by_job: OrderedDict[str, deque[Attempt]] = OrderedDict()
        self._max_jobs_tracked = max_jobs_tracked

    async def create(self, tenant: str, spec: EndpointCreate) -> tuple[Endpoint, str]:
        """A new endpoint and its secret (the only time the secret is shown)."""
        endpoint = Endpoint(
            id=f"ep_{os.urandom(10).hex()}",
            tenant=tenant,
            url=str(spec.url),
            events=spec.events,
            description=spec.description,
            created_at=self._clock(),
        )
        secret = new_secret()
        self._endpoints[endpoint.id] = endpoint
        self._secrets[endpoint.id] = [(secret, None)]
        return endpoint, secret

    async def get(self, endpoint_id: str) -> Endpoint | None:
        """The endpoint, or None."""
        return self._endpoints.get(endpoint_id)

    async def endpoints(self, tenant: str) -> list[Endpoint]:
        """A tenant's endpoints, oldest first."""
        return [e for e in self._endpoints.values() if e.tenant == tenant]

    async def delete(self, endpoint_id: str) -> bool:
        """Remove an endpoint; False if there was none."""
        self._secrets.pop(endpoint_id, None)
        self._by_endpoint.pop(endpoint_id, None)
        return self._endpoints.pop(endpoint_id, None) is not None

    async def rotate(self, endpoint_id: str) -> str | None:
        """A new secret; the old one keeps signing alongside for 24 h."""
        if endpoint_id not in self._endpoints:
            return None
        now = self._clock()
        secret = new_secret()
        kept = [
            (s, now + ROTATION_OVERLAP_S if exp is None else exp)
            for s, exp in self._live(endpoint_id)
        ]
        self._secrets[endpoint_id] = [(secret, None), *kept]
        return secret

    async def secrets(self, endpoint_id: str) -> list[str]:
        """Every secret that signs for the endpoint now, newest first."""
        return [secret for secret, _ in self._live(endpoint_id)]

    async def subscribers(self, tenant: str, event: EventType) -> list[Endpoint]:
        """The tenant's enabled endpoints that want `event`."""
        return [
            e
            for e in self._endpoints.values()
            if e.tenant == tenant and e.disabled_at is None and event in e.events
        ]

    async def disable(self, endpoint_id: str, reason: str) -> None:
        """Stop delivering to an endpoint."""
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is not None and endpoint.disabled_at is None:
            self._endpoints[endpoint_id] = endpoint.model_copy(
                update={"disabled_at": self._clock(), "disabled_reason": reason}
            )

    async def failed(self, endpoint_id: str, at: float) -> Endpoint | None:
        """Note a failed delivery; the endpoint with the start of its failing streak."""
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is not None and endpoint.failing_since is None:
            endpoint = endpoint.model_copy(update={"failing_since": at})
            self._endpoints[endpoint_id] = endpoint
        return endpoint

    async def succeeded(self, endpoint_id: str) -> None:
        """Note a delivery: the failing streak, if any, is over."""
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is not None and endpoint.failing_since is not None:
            self._endpoints[endpoint_id] = endpoint.model_copy(update={"failing_since": None})

    async def record(self, attempt: Attempt) -> None:
        """Keep an attempt in the endpoint's and the job's logs."""
        if attempt.endpoint_id is not None:
            log = self._by_endpoint.setdefault(attempt.endpoint_id, deque(maxlen=_ATTEMPTS_KEPT))
            log.append(attempt)
        job_log = self._by_job.get(attempt.job_id)
        if job_log is None:
            job_log = self._by_job[attempt.job_id] = deque(maxlen=_ATTEMPTS_KEPT)
            while len(self._by_job) > self._max_jobs_tracked:
                self._by_job.popitem(last=False)
        job_log.append(attempt)

    async def attempts_for_endpoint(self, endpoint_id: str) -> list[Attempt]:
        """The endpoint's most recent attempts, oldest first."""
        return list(self._by_endpoint.get(endpoint_id, ()))

    async def attempts_for_job(self, job_id: str) -> list[Attempt]:
        """Every recorded attempt to deliver a job's completion, oldest first."""
        return list(self._by_job.get(job_id, ()))

    def _live(self, endpoint_id: str) -> list[tuple[str, float | None]]:
        now = self._clock()
        return [
            (s, exp) for s, exp in self._secrets.get(endpoint_id, []) if exp is None or exp > now
        ]
