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
        "messages": [[m.role.value, m.content] for m in request.conversation()],
        "params": request.params.model_dump(mode="json", exclude_none=True),
        # Later request fields that shape the answer join here (template, schema).
        "template": None,
        "response_schema": None,
    }
    digest = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{KEY_VERSION}:{tenant}:{digest}"
