"""Sending one webhook POST: SSRF-guarded, redirects not followed, reads capped."""

import time
from dataclasses import dataclass

import aiohttp

from pipeline.webhooks.ssrf import AddressPolicy, check_url, guarded_connector, refusal_from

EXCERPT_CHARS = 256
MAX_READ_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one POST did: a status, or why there was none."""

    duration_ms: float
    status: int | None = None
    retry_after_s: float | None = None
    excerpt: str | None = None
    error: str | None = None
    refused: bool = False


class WebhookSender:
    """One client session for every delivery, bounded overall and per endpoint."""

    def __init__(
        self, policy: AddressPolicy, *, timeout_s: float, max_concurrency: int, per_endpoint: int
    ) -> None:
        self.policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._limits = (max_concurrency, per_endpoint)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            limit, per_host = self._limits
            self._session = aiohttp.ClientSession(
                connector=guarded_connector(self.policy, limit=limit, limit_per_host=per_host),
                timeout=self._timeout,
                headers={"User-Agent": "promptbus-webhooks/1"},
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        """POST `body` to `url`; never raises for the receiver's or the network's faults."""
        started = time.perf_counter()
        try:
            check_url(url, self.policy)
            async with self._client().post(
                url,
                data=body,
                headers={**headers, "Content-Type": "application/json"},
                allow_redirects=False,
            ) as response:
                # Read a bounded amount: a receiver must not make us buffer megabytes.
                head = await response.content.read(MAX_READ_BYTES)
                return SendResult(
                    duration_ms=_since(started),
                    status=response.status,
                    retry_after_s=_retry_after(response.headers.get("Retry-After")),
                    excerpt=head[:EXCERPT_CHARS].decode(errors="replace") or None,
                )
        except Exception as exc:
            refused = refusal_from(exc)
            if refused is not None:
                return SendResult(_since(started), error=f"refused: {refused}", refused=True)
            if isinstance(exc, TimeoutError):
                return SendResult(_since(started), error="timed out")
            if isinstance(exc, aiohttp.ClientError | OSError):
                return SendResult(_since(started), error=f"{type(exc).__name__}: {exc}")
            raise

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form; an HTTP date is ignored)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())
