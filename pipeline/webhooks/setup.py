"""Building the webhook side of a process from the settings."""

import ipaddress
import os
import time
from dataclasses import dataclass
from pathlib import Path

import structlog
from opentelemetry.trace import Tracer

from pipeline.jobs.store import JobStore
from pipeline.metrics import Metrics
from pipeline.settings import Settings
from pipeline.webhooks.context import WebhookContext
from pipeline.webhooks.registry import WebhookRegistry
from pipeline.webhooks.sender import WebhookSender
from pipeline.webhooks.signing import new_secret, secret_key, tenant_secret_of
from pipeline.webhooks.ssrf import AddressPolicy
from schemas import DEFAULT_TENANT

log = structlog.get_logger("promptbus.webhooks")

LOOPBACK_ONLY = AddressPolicy(
    allow=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
)


@dataclass(frozen=True)
class WebhookSetup:
    """The delivery context, and what to say about it at start-up."""

    context: WebhookContext
    sender: WebhookSender
    notes: tuple[str, ...]


def address_policy(settings: Settings) -> tuple[AddressPolicy, str | None]:
    """The SSRF policy, and a note when the embedded default opened loopback."""
    if settings.webhook_allow_private is not None:
        return AddressPolicy.parse(settings.webhook_allow_private), None
    if settings.broker_url == "memory://":
        note = (
            "webhooks may reach loopback receivers (embedded default; set "
            "PROMPTBUS_WEBHOOK_ALLOW_PRIVATE=false to refuse them)"
        )
        return LOOPBACK_ONLY, note
    return AddressPolicy(), None


def tenant_secret(settings: Settings) -> tuple[str, str | None]:
    """The default tenant's signing secret, and a note saying where a generated one lives."""
    if settings.webhook_secret is not None:
        secret = settings.webhook_secret.get_secret_value()
        secret_key(secret)
        return secret, None
    path = Path(settings.data_dir).resolve() / "webhook_secret"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Created readable by its owner only, and only once: processes starting together
        # on one machine race here, and the losers read the winner's secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = _read_secret(path)
    else:
        secret = new_secret()
        with os.fdopen(fd, "w") as fh:
            fh.write(secret + "\n")
    return secret, f"per-job webhooks are signed with the secret in {path}"


def _read_secret(path: Path, attempts: int = 50) -> str:
    """The secret another process wrote (it may still be writing it)."""
    for _ in range(attempts):
        secret = path.read_text().strip()
        if secret:
            secret_key(secret)
            return secret
        time.sleep(0.01)
    raise ValueError(f"{path} holds no webhook secret")


def build_webhooks(
    settings: Settings,
    registry: WebhookRegistry,
    jobs: JobStore,
    metrics: Metrics | None = None,
    tracer: Tracer | None = None,
) -> WebhookSetup:
    """The delivery context: registry, guarded sender, secrets and retry policy."""
    policy, policy_note = address_policy(settings)
    secret, secret_note = tenant_secret(settings)
    sender = WebhookSender(
        policy,
        timeout_s=settings.webhook_timeout,
        max_concurrency=settings.webhook_max_concurrency,
        per_endpoint=settings.webhook_per_endpoint_concurrency,
    )

    async def tenant_secrets(tenant: str) -> list[str]:
        # The default tenant's is the configured (or generated) secret itself.
        return [secret if tenant == DEFAULT_TENANT else tenant_secret_of(secret, tenant)]

    context = WebhookContext(
        registry=registry,
        sender=sender,
        tenant_secrets=tenant_secrets,
        claim=jobs.claim,
        retry_schedule_s=tuple(settings.webhook_retry_schedule),
        disable_after_s=settings.webhook_disable_after_s,
        metrics=metrics or Metrics(),
        tracer=tracer,
    )
    notes = tuple(note for note in (policy_note, secret_note) if note)
    return WebhookSetup(context, sender, notes)
