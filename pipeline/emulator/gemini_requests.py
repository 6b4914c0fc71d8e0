"""Reading a Gemini GenerateContentRequest into a Prompt, checked as the real API does."""

import re
from typing import Any, Final

import orjson
from aiohttp import web

from pipeline.emulator.answers import JsonMode, Prompt
from pipeline.emulator.state import BadRequest, Json
from pipeline.emulator.tools import Function, ToolChoice, ToolOffer, call_text, result_text

_OPENAPI_INTS: Final = ("minItems", "maxItems", "minLength", "maxLength", "minProperties")
_MODES: Final[dict[str, ToolChoice]] = {
    "MODE_UNSPECIFIED": "auto",
    "AUTO": "auto",
    "VALIDATED": "auto",
    "ANY": "required",
    "NONE": "none",
}


def field(message: Json, name: str) -> Any:
    """Return a field by its JSON name or its proto name, as the API accepts both
    (google-genai sends `parameters_json_schema` in snake case)."""
    if name in message:
        return message[name]
    return message.get(re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower())


def from_openapi(schema: Any) -> Any:
    """Translate Gemini's OpenAPI subset (`"type": "OBJECT"`, `nullable`) to JSON Schema."""
    if isinstance(schema, list):
        return [from_openapi(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: Json = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: from_openapi(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = from_openapi(value)
        elif key in _OPENAPI_INTS and isinstance(value, str) and value.isdigit():
            out[key] = int(value)  # int64 fields travel as JSON strings
        elif key not in ("nullable", "propertyOrdering", "property_ordering"):
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


async def read_body(request: web.Request) -> Json:
    """Parse a request body that must be a JSON object."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Invalid JSON payload received. {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("Invalid JSON payload received. Expected an object.")
    return body


def check_contents(body: Json, where: str = "GenerateContentRequest") -> list[Json]:
    """Return the request's contents, each checked to be an object with parts."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequest(f"* {where}.contents: contents is not specified")
    if not all(isinstance(c, dict) and isinstance(c.get("parts"), list) for c in contents):
        raise BadRequest(f"* {where}.contents: every content needs parts")
    return contents


def texts(content: Any) -> list[str]:
    """Return the texts of one content the token count covers: text parts, function
    calls and function responses."""
    found = []
    for part in content.get("parts", []) if isinstance(content, dict) else []:
        if not isinstance(part, dict):
            continue
        call, response = part.get("functionCall"), part.get("functionResponse")
        if isinstance(part.get("text"), str):
            found.append(part["text"])
        elif isinstance(call, dict):
            found.append(call_text(str(call.get("name")), orjson.dumps(call.get("args")).decode()))
        elif isinstance(response, dict):
            found.append(result_text(response.get("response")))
    return found


def _text_parts(content: Json) -> str:
    """Return the text parts of one content, joined."""
    return " ".join(
        part["text"]
        for part in content["parts"]
        if isinstance(part, dict) and isinstance(part.get("text"), str)
    )


def _tool_results(content: Json) -> list[str] | None:
    """Return the contents of a turn's function responses (None: not a tool result turn)."""
    results = []
    for part in content["parts"]:
        response = part.get("functionResponse") if isinstance(part, dict) else None
        if not isinstance(response, dict):
            return None
        results.append(result_text(response.get("response")))
    return results or None


def _json_mode(config: Json) -> JsonMode | None:
    """Read JSON mode from a generationConfig: responseMimeType and an optional schema."""
    json_schema, openapi_schema = config.get("responseJsonSchema"), config.get("responseSchema")
    if config.get("responseMimeType") != "application/json":
        if json_schema is not None or openapi_schema is not None:
            raise BadRequest(
                "* GenerateContentRequest.generation_config.response_mime_type: "
                "a response schema needs responseMimeType application/json"
            )
        return None
    for schema in (json_schema, openapi_schema):
        if schema is not None and not isinstance(schema, dict):
            raise BadRequest("* GenerateContentRequest.generation_config: a schema is an object")
    if isinstance(json_schema, dict):
        return JsonMode(json_schema)
    return JsonMode(from_openapi(openapi_schema) if isinstance(openapi_schema, dict) else None)


def _function(declaration: Any) -> Function:
    """Read one functionDeclaration: parametersJsonSchema, or parameters (OpenAPI)."""
    if not isinstance(declaration, dict) or not isinstance(declaration.get("name"), str):
        raise BadRequest("* GenerateContentRequest.tools: a function declaration needs a name")
    name, openapi_schema = declaration["name"], declaration.get("parameters")
    if isinstance(json_schema := field(declaration, "parametersJsonSchema"), dict):
        return Function(name, json_schema)
    return Function(
        name, from_openapi(openapi_schema) if isinstance(openapi_schema, dict) else None
    )


def _tool_offer(body: Json) -> ToolOffer:
    """Read the function declarations of `tools` and toolConfig's functionCallingConfig."""
    tools = body.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        raise BadRequest("* GenerateContentRequest.tools: expected a list of tools")
    functions = tuple(
        _function(declaration)
        for tool in tools
        for declaration in field(tool, "functionDeclarations") or []
    )
    tool_config = field(body, "toolConfig")
    config = field(tool_config, "functionCallingConfig") if isinstance(tool_config, dict) else None
    config = config if isinstance(config, dict) else {}
    named = config.get("mode", "AUTO")
    mode = _MODES.get(named) if isinstance(named, str) else None
    if mode is None:
        raise BadRequest(f"* functionCallingConfig.mode: unknown mode {named!r}")
    allowed = field(config, "allowedFunctionNames")
    if allowed is not None:
        if not isinstance(allowed, list) or not all(isinstance(n, str) for n in allowed):
            raise BadRequest("* allowedFunctionNames: expected a list of names")
        unknown = set(allowed) - {function.name for function in functions}
        if unknown:
            raise BadRequest(f"* allowedFunctionNames: not declared: {', '.join(sorted(unknown))}")
        functions = tuple(function for function in functions if function.name in allowed)
    return ToolOffer(functions, mode)


def read_prompt(model: str, body: Json) -> Prompt:
    """Reduce a GenerateContentRequest to what the answer depends on."""
    system = body.get("systemInstruction") or {}
    config = body.get("generationConfig") or {}
    contents = check_contents(body)
    # The API treats a content without a role as a user turn.
    users = [
        _text_parts(c)
        for c in contents
        if c.get("role", "user") == "user" and _tool_results(c) is None
    ]
    canonical = {"model": model, "contents": contents, "system": system, "config": config}
    # Only present tool fields enter the digest: answers without tools stay as they were.
    for name in ("tools", "toolConfig"):
        if (value := field(body, name)) is not None:
            canonical[name] = value
    last = contents[-1]
    results = _tool_results(last)
    limit = config.get("maxOutputTokens")
    stops = config.get("stopSequences") or []
    return Prompt(
        model=model,
        user_turns=tuple(users),
        texts=tuple(t for c in [*contents, system] for t in texts(c)),
        canonical=canonical,
        max_tokens=limit if isinstance(limit, int) else None,
        stop=tuple(s for s in stops if isinstance(s, str)),
        json_mode=_json_mode(config),
        tools=_tool_offer(body),
        ends_with_user=last.get("role", "user") == "user" and results is None,
        tool_results=tuple(results or ()),
    )
