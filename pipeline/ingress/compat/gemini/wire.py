"""Gemini's GenerateContentRequest and countTokens bodies as they come over the wire.

Field names are taken in camelCase or snake_case, as Google's JSON parser takes them, and
a field Gemini does not define is a 400 in Google's words. generationConfig fields that
promptbus cannot carry are accepted at their neutral value only.
"""

from typing import Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from pipeline.errors import ValidationFailed
from pipeline.ingress.body import validation_failed

# generationConfig fields promptbus does not carry, accepted at these values only.
_NEUTRAL: Final[dict[str, tuple[Any, ...]]] = {
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "response_logprobs": (None, False),
    "logprobs": (None, 0),
    "response_modalities": (None, [], ["TEXT"], ["text"]),
    "audio_timestamp": (None, False),
    "speech_config": (None,),
    "image_config": (None,),
    "enable_affective_dialog": (None, False),
    "enable_enhanced_civic_answers": (None, False),
    "routing_config": (None,),
    "model_selection_config": (None,),
}


class _Wire(BaseModel):
    """A Gemini wire object: camelCase or snake_case names, unknown names refused."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )


class FunctionCall(_Wire):
    """A model turn's `functionCall` part: a function's name and its arguments."""

    id: str | None = None
    name: str
    args: dict[str, Any] | None = None


class FunctionResponse(_Wire):
    """A user turn's `functionResponse` part: what the called function returned."""

    id: str | None = None
    name: str
    response: dict[str, Any] | None = None


class Part(_Wire):
    """One part of a content: text, a function call or its response; thoughts are skipped.

    Other kinds (inlineData...) are kept as extras, for the 400 that names them.
    """

    model_config = ConfigDict(extra="allow")

    text: str | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None


class Content(_Wire):
    """One turn: a role (`user` when absent) and its parts."""

    role: str | None = None
    parts: list[Part] = Field(min_length=1)


class SafetySettingWire(_Wire):
    """`safetySettings[]`: a harm category and the threshold to block it at."""

    category: str
    threshold: str


class FunctionDeclaration(_Wire):
    """A function the model may call: its parameters as OpenAPI (`parameters`) or JSON Schema.

    `response`, `responseJsonSchema` (what the function returns) and `behavior` (the Live
    API's) are accepted and not passed on.
    """

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    parameters_json_schema: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    response_json_schema: Any = None
    behavior: str | None = None


class ToolWire(_Wire):
    """`tools[]`: function declarations; Google's own tools (googleSearch...) kept as extras."""

    model_config = ConfigDict(extra="allow")

    function_declarations: list[FunctionDeclaration] | None = None


class FunctionCallingConfig(_Wire):
    """`toolConfig.functionCallingConfig`: AUTO, ANY (of some names) or NONE."""

    mode: str | None = None
    allowed_function_names: list[str] | None = None


class ToolConfig(_Wire):
    """`toolConfig`; `retrievalConfig` (for Google's own tools) is accepted and ignored."""

    function_calling_config: FunctionCallingConfig | None = None
    retrieval_config: dict[str, Any] | None = None


class GenerationConfig(_Wire):
    """`generationConfig`, as far as Gemini defines it."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    candidate_count: int | None = None
    max_output_tokens: int | None = None
    stop_sequences: list[str] | None = None
    seed: int | None = None
    response_mime_type: str | None = None
    response_schema: dict[str, Any] | None = None
    response_json_schema: dict[str, Any] | None = None
    thinking_config: dict[str, Any] | None = None
    media_resolution: str | None = None
    presence_penalty: Any = None
    frequency_penalty: Any = None
    response_logprobs: Any = None
    logprobs: Any = None
    response_modalities: Any = None
    audio_timestamp: Any = None
    speech_config: Any = None
    image_config: Any = None
    enable_affective_dialog: Any = None
    enable_enhanced_civic_answers: Any = None
    routing_config: Any = None
    model_selection_config: Any = None

    @model_validator(mode="after")
    def _neutral(self) -> "GenerationConfig":
        for name, neutral in _NEUTRAL.items():
            if getattr(self, name) not in neutral:
                field = f"generationConfig.{to_camel(name)}"
                raise ValueError(f"promptbus does not support {field} = {getattr(self, name)!r}")
        return self


class GenerateContentRequest(_Wire):
    """`POST /{version}/models/{model}:generateContent` (and `:streamGenerateContent`)."""

    contents: list[Content] = Field(min_length=1)
    system_instruction: Content | None = None
    generation_config: GenerationConfig | None = None
    safety_settings: list[SafetySettingWire] | None = None
    tools: list[ToolWire] | None = None
    tool_config: ToolConfig | None = None
    cached_content: str | None = None
    continuation_token: str | None = None
    model: str | None = None
    labels: dict[str, str] | None = None
    service_tier: str | None = None
    store: bool | None = None


class CountTokensRequest(_Wire):
    """`POST /{version}/models/{model}:countTokens`: contents, or a whole request to count."""

    contents: list[Content] | None = None
    generate_content_request: GenerateContentRequest | None = None

    @model_validator(mode="after")
    def _one(self) -> "CountTokensRequest":
        if (self.contents is None) == (self.generate_content_request is None):
            raise ValueError("give exactly one of contents and generateContentRequest")
        return self


W = TypeVar("W", bound=_Wire)


def invalid(exc: ValidationError) -> ValidationFailed:
    """A bad request: Google's words for an unknown field, promptbus's summary otherwise."""
    first = exc.errors(include_url=False)[0]
    if first["type"] == "extra_forbidden":
        *within, name = (str(part) for part in first["loc"])
        where = f" at '{'.'.join(within)}'" if within else ""
        return ValidationFailed(
            f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.',
            field=".".join([*within, name]),
        )
    return validation_failed(exc)


def read(model: type[W], raw: object) -> W:
    """`raw` (parsed JSON) read as `model`; a 400 naming what is wrong."""
    if not isinstance(raw, dict):
        raise ValidationFailed("Invalid JSON payload received. Expected an object.")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise invalid(exc) from exc
