"""Usage entries from what a request path has at its end: the request, the answer or error.

An answer is read as its JSON (parsed) so that the fast path, which holds only the bytes
of a cached answer, builds no model for it.
"""

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from pipeline.ledger.entry import COALESCED, ERROR, OK, UsageEntry
from schemas import GenerateRequest, GenerateResponse

# What `answered` reads of a response; the rest (the text) is not dumped for it.
_READ: Final = {"provider", "provider_model", "usage", "cost", "cache", "routing"}
_EMPTY: Final[Mapping[str, Any]] = {}


class Caller(NamedTuple):
    """Who asked for what, and how: the part of a usage entry known before the answer.

    Its fields are UsageEntry's of the same names (`UsageEntry(**caller._asdict(), ...)`;
    `answered` passes them one by one: tests/pipeline/ledger/test_entries.py checks it).

    A named tuple: it is built on every cache hit, and a frozen dataclass costs ~10x more.
    """

    tenant: str
    key_id: str | None
    request_id: str
    surface: str
    model: str
    streamed: bool = False
    job_id: str | None = None
    template_id: str | None = None
    template_version: str | None = None
    chain_id: str | None = None
    chain_version: int | None = None
    chain_step: str | None = None


class ChainTag(NamedTuple):
    """The chain a model call was made for: its id, version and step (None: a custom chain's)."""

    id: str
    version: int
    step: str | None = None


def caller(
    request: GenerateRequest,
    *,
    tenant: str,
    key_id: str | None,
    request_id: str,
    surface: str,
    job_id: str | None = None,
    chain: ChainTag | None = None,
) -> Caller:
    """The caller of `request` (its template, when it had one, pinned by then), made for
    `chain`'s step if given."""
    template = request.template
    return Caller(
        tenant=tenant,
        key_id=key_id,
        request_id=request_id,
        surface=surface,
        model=request.model,
        streamed=request.stream,
        job_id=job_id,
        template_id=template.id if template else None,
        template_version=str(template.version) if template and template.version else None,
        chain_id=chain.id if chain else None,
        chain_version=chain.version if chain else None,
        chain_step=chain.step if chain else None,
    )


def answered(who: Caller, response: Mapping[str, Any], latency_ms: float) -> UsageEntry:
    """The entry of an answer (a response's JSON): a cache hit or coalesced answer costs
    nothing, and saves what the answer cost when it was generated.

    Every cache hit makes one: the caller's fields are passed one by one (`_asdict` and its
    dict cost a third more).
    """
    get = response.get
    cache = get("cache") or _EMPTY
    usage = get("usage") or _EMPTY
    cost = float((get("cost") or _EMPTY).get("total_usd") or 0.0)
    tier = cache.get("tier") if cache.get("hit") else None
    if tier is None and cache.get("coalesced"):
        tier = COALESCED
    paid = tier is None
    return UsageEntry(
        who.tenant,
        who.request_id,
        who.surface,
        who.model,
        OK,
        latency_ms,
        key_id=who.key_id,
        job_id=who.job_id,
        streamed=who.streamed,
        template_id=who.template_id,
        template_version=who.template_version,
        chain_id=who.chain_id,
        chain_version=who.chain_version,
        chain_step=who.chain_step,
        deployment=(get("routing") or _EMPTY).get("deployment"),
        provider=get("provider"),
        provider_model=get("provider_model"),
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        cost_usd=cost if paid else 0.0,
        saved_usd=0.0 if paid else cost,
        cache_tier=tier,
    )


def answered_model(who: Caller, response: GenerateResponse, latency_ms: float) -> UsageEntry:
    """`answered` for a response model."""
    return answered(who, response.model_dump(mode="json", include=_READ), latency_ms)


def failed(
    who: Caller, error_type: str | None, latency_ms: float, status: str = ERROR
) -> UsageEntry:
    """The entry of a request that ended without an answer."""
    return UsageEntry(
        **who._asdict(),
        status=status,
        latency_ms=latency_ms,
        error_type=error_type,
    )
