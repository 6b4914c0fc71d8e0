"""Cache keys: a hash of the canonical JSON of everything that shapes an answer."""

import hashlib

import orjson

from schemas import GenerateRequest

KEY_VERSION = "v1"


def cache_key(request: GenerateRequest, *, tenant: str, provider: str, provider_model: str) -> str:
    """The key under which `request`'s answer is cached.

    Aliases resolve to the provider model first, so `flash` and `gemini-2.5-flash`
    share entries; a prompt with a system text keys the same as the equivalent
    messages. Key order and whitespace in the request body never matter.
    """
    canonical = {
        "tenant": tenant,
        "provider": provider,
        "model": provider_model,
        "messages": _messages(request),
        "params": _params(request),
        # Later request fields that shape the answer join here (template, schema).
        "template": None,
        "response_schema": None,
    }
    digest = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{KEY_VERSION}:{tenant}:{digest}"


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
