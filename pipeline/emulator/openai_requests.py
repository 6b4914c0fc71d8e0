"""Reading an OpenAI chat completion request into a Prompt, checked as the real API does."""

import math
from typing import Any, Final

from pipeline.emulator.answers import JsonMode, Prompt
from pipeline.emulator.state import BadRequest, Json
from pipeline.emulator.tools import Function, ToolChoice, ToolOffer, call_text

_ROLES: Final = ("system", "developer", "user", "assistant", "tool")
_FORMATS: Final = ("text", "json_object", "json_schema")
_CHOICES: Final[tuple[ToolChoice, ...]] = ("auto", "none", "required")


def _text(content: Any, index: int) -> str:
    """Return the text of a message's content: a string or a list of parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise BadRequest(f"messages[{index}].content must be a string or an array of parts")
    texts = []
    for part in content:
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise BadRequest(f"messages[{index}].content: every part needs a type")
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise BadRequest(f"messages[{index}].content: a text part needs a text")
            texts.append(part["text"])
    return " ".join(texts)


def _number(body: Json, name: str, low: float, high: float, integer: bool = False) -> Any:
    """Return an optional numeric parameter, checked against its bounds."""
    value = body.get(name)
    kinds = (int,) if integer else (int, float)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high
    ):
        raise BadRequest(f"Invalid value for '{name}': expected a number in [{low}, {high}]")
    return value


def _json_mode(body: Json) -> JsonMode | None:
    """Read `response_format`: text, json_object, or json_schema with a schema."""
    spec = body.get("response_format")
    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("type") not in _FORMATS:
        raise BadRequest(f"Invalid 'response_format': type must be one of {', '.join(_FORMATS)}")
    if spec["type"] == "text":
        return None
    if spec["type"] == "json_object":
        return JsonMode()
    wrapper = spec.get("json_schema")
    if not isinstance(wrapper, dict) or not isinstance(wrapper.get("name"), str):
        raise BadRequest("Missing required parameter: 'response_format.json_schema.name'")
    schema = wrapper.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise BadRequest("Invalid 'response_format.json_schema.schema': expected an object")
    return JsonMode(schema)


def _function(tool: Any, index: int) -> Function:
    """Read one entry of `tools`: `{"type": "function", "function": {name, parameters}}`."""
    spec = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(spec, dict) or tool.get("type") != "function":
        raise BadRequest(f"Invalid 'tools[{index}]': expected a function tool")
    name, schema = spec.get("name"), spec.get("parameters")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"Missing required parameter: 'tools[{index}].function.name'")
    if schema is not None and not isinstance(schema, dict):
        raise BadRequest(f"Invalid 'tools[{index}].function.parameters': expected an object")
    return Function(name, schema)


def _tool_offer(body: Json) -> ToolOffer:
    """Read `tools`, `tool_choice` (a mode or one named function) and `parallel_tool_calls`."""
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise BadRequest("Invalid 'tools': expected an array of tools")
    functions = tuple(_function(tool, index) for index, tool in enumerate(tools or []))
    choice = body.get("tool_choice")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise BadRequest("Invalid 'parallel_tool_calls': expected a boolean")
    if choice is None or choice in _CHOICES:
        return ToolOffer(functions, choice or "auto", parallel is not False)
    named = choice.get("function") if isinstance(choice, dict) else None
    name = named.get("name") if isinstance(named, dict) else None
    if not isinstance(name, str) or choice.get("type") != "function":
        raise BadRequest(f"Invalid 'tool_choice': one of {', '.join(_CHOICES)} or a function")
    chosen = tuple(function for function in functions if function.name == name)
    if not chosen:
        raise BadRequest(f"Invalid 'tool_choice': no function named {name!r} in 'tools'")
    return ToolOffer(chosen, "required", parallel is not False)


def _call(call: Any, index: int) -> Json:
    """Reduce one tool call of an assistant message to its id, name and arguments."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        raise BadRequest(f"Invalid 'messages[{index}].tool_calls': each needs a function")
    return {"id": call.get("id"), "name": function.get("name"), "args": function.get("arguments")}


def _turn(message: Any, index: int) -> Json:
    """Reduce one message to its role, text and tool fields (the canonical form)."""
    if not isinstance(message, dict) or message.get("role") not in _ROLES:
        raise BadRequest(f"Invalid 'messages[{index}]': a role among {', '.join(_ROLES)}")
    turn: Json = {"role": message["role"], "content": _text(message.get("content"), index)}
    if message["role"] == "tool":
        if not isinstance(message.get("tool_call_id"), str):
            raise BadRequest(f"Missing required parameter: 'messages[{index}].tool_call_id'")
        turn["tool_call_id"] = message["tool_call_id"]
    calls = message.get("tool_calls")
    if message["role"] == "assistant" and calls is not None:
        if not isinstance(calls, list):
            raise BadRequest(f"Invalid 'messages[{index}].tool_calls': expected an array")
        turn["tool_calls"] = [_call(call, index) for call in calls]
    return turn


def _texts(turn: Json) -> list[str]:
    """Return the texts of a turn the prompt token count covers."""
    calls = turn.get("tool_calls", [])
    return [turn["content"], *(call_text(str(c["name"]), str(c["args"])) for c in calls)]


def read_prompt(model: str, body: Json) -> Prompt:
    """Reduce a chat completion request to what the answer depends on."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("Missing required parameter: 'messages'")
    turns = [_turn(message, index) for index, message in enumerate(messages)]
    if body.get("n") not in (None, 1):
        raise BadRequest("Invalid value for 'n': the emulator answers with one choice")
    limit = _number(body, "max_completion_tokens", 1, math.inf, True)
    limit = _number(body, "max_tokens", 1, math.inf, True) if limit is None else limit
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise BadRequest("Invalid 'stop': expected a string or an array of strings")
    params = {
        "temperature": _number(body, "temperature", 0, 2),
        "top_p": _number(body, "top_p", 0, 1),
        "max_tokens": limit,
        "stop": stops,
        "response_format": body.get("response_format"),
    }
    # Only present tool fields enter the digest: answers without tools stay as they were.
    for name in ("tools", "tool_choice", "parallel_tool_calls"):
        if body.get(name) is not None:
            params[name] = body[name]
    results: list[str] = []
    for turn in reversed(turns):
        if turn["role"] != "tool":
            break
        results.insert(0, turn["content"])
    return Prompt(
        model=model,
        user_turns=tuple(t["content"] for t in turns if t["role"] == "user"),
        texts=tuple(text for turn in turns for text in _texts(turn)),
        canonical={"model": model, "messages": turns, "params": params},
        max_tokens=limit,
        stop=tuple(stops),
        json_mode=_json_mode(body),
        tools=_tool_offer(body),
        ends_with_user=turns[-1]["role"] == "user",
        tool_results=tuple(results),
    )
