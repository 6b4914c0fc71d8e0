"""A Gemini request's meaning: the one internal request.

A few fields are accepted and ignored: thinkingConfig and mediaResolution shape cost and
latency, not the text promptbus returns; labels, serviceTier and store are bookkeeping;
toolConfig means nothing without function declarations; the body's model gives way to the
path's.
"""

from typing import Any, Final

from google.genai.types import HarmBlockThreshold, HarmCategory
from pydantic import ValidationError

from pipeline.errors import ValidationFailed
from pipeline.ingress.body import validation_failed
from pipeline.ingress.compat.gemini.openapi import from_openapi
from pipeline.ingress.compat.gemini.tools import offer
from pipeline.ingress.compat.gemini.turns import conversation
from pipeline.ingress.compat.gemini.wire import (
    GenerateContentRequest,
    GenerationConfig,
    SafetySettingWire,
)
from schemas import GenerateRequest

JSON_MIME: Final = "application/json"


def _unsupported(request: GenerateContentRequest) -> None:
    for name, given in (
        ("cachedContent", request.cached_content is not None),
        ("continuationToken", request.continuation_token is not None),
    ):
        if given:
            raise ValidationFailed(f"promptbus does not support {name} yet", field=name)
    config = request.generation_config
    if config is not None and config.candidate_count not in (None, 1):
        raise ValidationFailed(
            "promptbus returns one candidate: generationConfig.candidateCount must be 1",
            field="generationConfig.candidateCount",
        )


def _schema(config: GenerationConfig) -> dict[str, Any] | None:
    mime = config.response_mime_type
    given = [s for s in (config.response_json_schema, config.response_schema) if s is not None]
    if len(given) > 1:
        raise ValidationFailed(
            "give responseSchema or responseJsonSchema, not both", field="generationConfig"
        )
    if mime in (None, "text/plain"):
        if given:
            raise ValidationFailed(
                f"a response schema needs responseMimeType {JSON_MIME!r}",
                field="generationConfig.responseMimeType",
            )
        return None
    if mime != JSON_MIME:
        raise ValidationFailed(
            f"promptbus does not support responseMimeType {mime!r}",
            field="generationConfig.responseMimeType",
        )
    if config.response_json_schema is not None:
        return config.response_json_schema
    if config.response_schema is not None:
        converted: dict[str, Any] = from_openapi(config.response_schema)
        return converted
    # JSON without a schema: any JSON object, validated as such (as OpenAI's json_object).
    return {"type": "object"}


def _params(config: GenerationConfig) -> dict[str, Any]:
    top_k = config.top_k
    params = {
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": int(top_k) if top_k is not None and top_k == int(top_k) else top_k,
        "max_output_tokens": config.max_output_tokens,
        "stop": config.stop_sequences or None,
        "seed": config.seed,
    }
    return {k: v for k, v in params.items() if v is not None}


def _safety(settings: list[SafetySettingWire] | None) -> list[dict[str, str]] | None:
    if not settings:
        return None
    for i, s in enumerate(settings):
        for name, value, known in (
            ("category", s.category, HarmCategory.__members__),
            ("threshold", s.threshold, HarmBlockThreshold.__members__),
        ):
            if value not in known:
                raise ValidationFailed(
                    f"Invalid value at 'safety_settings[{i}].{name}': {value!r}",
                    field=f"safetySettings[{i}].{name}",
                )
    return [{"category": s.category, "threshold": s.threshold} for s in settings]


def to_generate_request(
    request: GenerateContentRequest, *, model: str, stream: bool
) -> GenerateRequest:
    """The internal request `request` means for `model`; a 400 when promptbus cannot serve it."""
    _unsupported(request)
    config = request.generation_config or GenerationConfig()
    messages = conversation(request.contents, request.system_instruction)
    body: dict[str, Any] = {
        "model": model,
        "messages": [m.model_dump(mode="json") for m in messages],
        "params": _params(config),
        "response_schema": _schema(config),
        "safety_settings": _safety(request.safety_settings),
        "stream": stream,
        **offer(request.tools, request.tool_config),
    }
    try:
        return GenerateRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from exc
