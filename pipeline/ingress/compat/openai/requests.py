"""OpenAI's Chat Completions request, read into the one internal request."""

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import ValidationFailed
from pipeline.ingress.body import validation_failed
from schemas import GenerateRequest

# Parameters OpenAI has and promptbus does not carry: accepted at their neutral value only.
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "n": (None, 1),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
}


class _Lenient(BaseModel):
    # Fields this version of promptbus does not know are ignored, as newer SDKs send more.
    model_config = ConfigDict(extra="ignore", frozen=True)


class TextPart(_Lenient):
    """A content part: promptbus carries text only."""

    type: Literal["text"]
    text: str


class FunctionCall(_Lenient):
    """A call's function: its name and its arguments as a JSON string."""

    name: str
    arguments: str = "{}"


class ChatToolCall(_Lenient):
    """A tool call of an assistant turn."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class FunctionDef(_Lenient):
    """A function the model may call."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ChatTool(_Lenient):
    """An offered tool: promptbus passes functions on."""

    type: Literal["function"]
    function: FunctionDef


class NamedChoice(_Lenient):
    """`tool_choice` naming one function."""

    type: Literal["function"]
    function: FunctionCall | dict[str, str]


class ChatMessage(_Lenient):
    """One message of the conversation, in OpenAI's roles."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ChatToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text, its parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(_Lenient):
    """What a stream carries besides the deltas."""

    include_usage: bool = False


class JsonSchemaFormat(_Lenient):
    """`response_format.json_schema`."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Lenient):
    """`response_format`: plain text, any JSON object, or JSON following a schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class ChatCompletionRequest(_Lenient):
    """`POST /v1/chat/completions`, as far as promptbus reads it."""

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    tools: list[ChatTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedChoice | None = None
    parallel_tool_calls: bool | None = None

    @property
    def include_usage(self) -> bool:
        """Whether a stream ends with a usage chunk."""
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


def _unsupported(raw: dict[str, Any]) -> None:
    for name, neutral in _NEUTRAL.items():
        if name in raw and raw[name] not in neutral:
            raise ValidationFailed(
                f"promptbus does not support {name!r} = {raw[name]!r}", field=name
            )


def read_request(raw: object) -> ChatCompletionRequest:
    """The Chat Completions request in `raw` (parsed JSON); a 422 naming the bad field."""
    if not isinstance(raw, dict):
        raise ValidationFailed("the request body must be a JSON object")
    _unsupported(raw)
    try:
        return ChatCompletionRequest.model_validate(raw)
    except ValidationError as exc:
        raise validation_failed(exc) from exc


def _schema(fmt: ResponseFormat | None) -> dict[str, Any] | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    if fmt.json_schema is None:
        raise ValidationFailed(
            "response_format json_schema needs 'json_schema'", field="response_format"
        )
    return fmt.json_schema.schema_ or {"type": "object"}


def _arguments(call: ChatToolCall) -> dict[str, Any]:
    try:
        value = orjson.loads(call.function.arguments or "{}")
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(
            f"tool call {call.id!r}: arguments are not JSON", field="messages"
        ) from exc
    if not isinstance(value, dict):
        raise ValidationFailed(
            f"tool call {call.id!r}: arguments must be an object", field="messages"
        )
    return value


def _message(message: ChatMessage) -> dict[str, Any]:
    """One message as the internal request has it."""
    out: dict[str, Any] = {
        "role": "system" if message.role == "developer" else message.role,
        "content": message.text(),
    }
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "name": c.function.name, "arguments": _arguments(c)}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _tools(chat: ChatCompletionRequest) -> dict[str, Any]:
    """The tool fields of the internal request (none when the request offers no tools)."""
    out: dict[str, Any] = {}
    if chat.tools:
        out["tools"] = [t.function.model_dump(exclude_none=True) for t in chat.tools]
    choice = chat.tool_choice
    if isinstance(choice, NamedChoice):
        function = choice.function
        out["tool_choice"] = (
            function.name if isinstance(function, FunctionCall) else function.get("name")
        )
    elif choice is not None and chat.tools:
        out["tool_choice"] = choice
    if chat.parallel_tool_calls is not None and chat.tools:
        out["parallel_tool_calls"] = chat.parallel_tool_calls
    return out


def to_generate_request(chat: ChatCompletionRequest) -> GenerateRequest:
    """The internal request `chat` means; a 422 when it is not one promptbus can serve."""
    messages = [_message(m) for m in chat.messages]
    stop = [chat.stop] if isinstance(chat.stop, str) else chat.stop
    params: dict[str, Any] = {
        "seed": chat.seed,
        "temperature": chat.temperature,
        "top_p": chat.top_p,
        "max_output_tokens": chat.max_completion_tokens or chat.max_tokens,
        "stop": stop or None,
    }
    body: dict[str, Any] = {
        "model": chat.model,
        "messages": messages,
        "params": {k: v for k, v in params.items() if v is not None},
        "response_schema": _schema(chat.response_format),
        "stream": bool(chat.stream),
        **_tools(chat),
    }
    if chat.user is not None:
        body["user"] = chat.user
    try:
        return GenerateRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_failed(exc) from exc
