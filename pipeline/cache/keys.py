"""Cache keys: a hash of the canonical JSON of everything that shapes an answer."""

import hashlib

import orjson

from pipeline.errors import ValidationFailed
from schemas import GenerateRequest, Message

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
    canonical: dict[str, object] = {
        "tenant": tenant,
        "provider": provider,
        "model": provider_model,
        "messages": _messages(request),
        "params": _params(request),
        "template": None if template is None else {"id": template.id, "version": template.version},
        # The schema as given: OPT_SORT_KEYS sorts its keys at every depth.
        "response_schema": request.response_schema,
        # Absent, not null, when unset: the keys of requests without tools stay as they were.
        **_tools(request),
    }
    if request.safety_settings:
        # Only when given, so that every request without them keeps the key it had.
        canonical["safety_settings"] = sorted(
            [s.category, s.threshold] for s in request.safety_settings
        )
    try:
        encoded = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        # Only free-form JSON (a schema, tool arguments) can hold what JSON cannot carry,
        # such as an integer past 64 bits.
        field = _unencodable(canonical)
        raise ValidationFailed(f"{field} cannot be canonicalised: {exc}", field=field) from exc
    return f"{KEY_VERSION}:{tenant}:{hashlib.sha256(encoded).hexdigest()}"


def _messages(request: GenerateRequest) -> list[list[object]]:
    """The conversation as [role, text] pairs, as `GenerateRequest.conversation` has it.

    A message with tool calls or a tool-call id gets them as a third member; a plain
    message stays a pair, so that conversations without tools key as they always did.
    """
    if request.messages is not None:
        return [_message(m) for m in request.messages]
    head: list[list[object]] = [["system", request.system]] if request.system else []
    return [*head, ["user", request.prompt or ""]]


def _message(message: Message) -> list[object]:
    pair: list[object] = [message.role.value, message.content]
    tooling: dict[str, object] = {}
    if message.tool_calls is not None:
        tooling["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        tooling["tool_call_id"] = message.tool_call_id
    return [*pair, tooling] if tooling else pair


def _tools(request: GenerateRequest) -> dict[str, object]:
    """The tool fields that are set; `user` is left out (it names a caller, not an answer)."""
    values: dict[str, object] = {
        "tool_choice": request.tool_choice,
        "parallel_tool_calls": request.parallel_tool_calls,
    }
    if request.tools is not None:
        values["tools"] = [t.model_dump(exclude_none=True) for t in request.tools]
    return {name: value for name, value in values.items() if value is not None}


def _unencodable(canonical: dict[str, object]) -> str:
    """The first part of the canonical request that JSON cannot carry."""
    for name, value in canonical.items():
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError:
            return name
    return "request"


def _params(request: GenerateRequest) -> dict[str, object]:
    """The generation params that are set (unset and absent must key the same)."""
    p = request.params
    values = {
        "temperature": p.temperature,
        "top_p": p.top_p,
        "top_k": p.top_k,
        "max_output_tokens": p.max_output_tokens,
        "stop": p.stop,
        "seed": p.seed,
    }
    # `+ 0.0` makes -0.0 (which the bounds let through) key as 0.0, the same temperature.
    return {
        name: value + 0.0 if isinstance(value, float) else value
        for name, value in values.items()
        if value is not None
    }
