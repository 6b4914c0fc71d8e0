"""Cache keys: a hash of the canonical JSON of everything that shapes an answer."""

import hashlib

import orjson

from pipeline.errors import ValidationFailed
from schemas import GenerateRequest

KEY_VERSION = "v1"


def cache_key(request: GenerateRequest, *, tenant: str, provider: str, provider_model: str) -> str:
    """The key under which `request`'s answer is cached.

    Aliases resolve to the provider model first, so `flash` and `gemini-2.5-flash`
    share entries; a prompt with a system text keys the same as the equivalent
    messages. Key order and whitespace in the request body never matter. A template
    request must be expanded first: its key holds the rendered messages and the
    template's id and pinned version (its variables only through what they rendered).
    """
    if not request.expanded:
        raise ValueError("a template request must be expanded before it is keyed")
    template = request.template
    canonical = {
        "tenant": tenant,
        "provider": provider,
        "model": provider_model,
        "messages": _messages(request),
        "params": _params(request),
        "template": None if template is None else {"id": template.id, "version": template.version},
        # The schema as given: OPT_SORT_KEYS sorts its keys at every depth.
        "response_schema": request.response_schema,
    }
    if request.safety_settings:
        # Only when given, so that every request without them keeps the key it had.
        canonical["safety_settings"] = sorted(
            [s.category, s.threshold] for s in request.safety_settings
        )
    try:
        encoded = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        # Only the free-form schema can hold what JSON cannot carry (an integer past 64 bits).
        raise ValidationFailed(
            f"response_schema cannot be canonicalised: {exc}", field="response_schema"
        ) from exc
    return f"{KEY_VERSION}:{tenant}:{hashlib.sha256(encoded).hexdigest()}"


def _messages(request: GenerateRequest) -> list[list[str]]:
    """The conversation as [role, text] pairs, as `GenerateRequest.conversation` has it."""
    if request.messages is not None:
        return [[m.role.value, m.content] for m in request.messages]
    head = [["system", request.system]] if request.system else []
    return [*head, ["user", request.prompt or ""]]


def _params(request: GenerateRequest) -> dict[str, object]:
    """The generation params that are set (unset and absent must key the same)."""
    p = request.params
    values = {
        "temperature": p.temperature,
        "top_p": p.top_p,
        "top_k": p.top_k,
        "max_output_tokens": p.max_output_tokens,
        "stop": p.stop,
    }
    return {name: value for name, value in values.items() if value is not None}
