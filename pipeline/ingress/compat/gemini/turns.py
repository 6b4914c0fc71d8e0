"""Gemini's `contents` (and `systemInstruction`) as promptbus's messages.

A turn's text parts are joined by newlines; thought parts are skipped. A model turn's
functionCall parts are the assistant message's tool calls; a user turn's functionResponse
parts are tool messages, before the turn's text if it has any. A call without an id gets
the one promptbus gives a call it answered without one (`call_<turn>_<index>_<name>`), so
that a history sent back with or without ids keys the same; a response without an id
answers the latest unanswered call of its name.
"""

from typing import Any, Final

import orjson
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from pipeline.errors import ValidationFailed
from pipeline.ingress.body import validation_failed
from pipeline.ingress.compat.gemini.wire import Content, FunctionResponse, Part
from pipeline.providers.messages import call_id
from schemas import Message

# Part kinds Gemini has and promptbus does not carry.
_NOT_CARRIED: Final = (
    "inlineData",
    "fileData",
    "executableCode",
    "codeExecutionResult",
    "videoMetadata",
)


def _checked(part: Part, where: str) -> Part:
    """`part`, unless it is of a kind promptbus does not carry (or unknown): a 400."""
    for name in part.model_extra or ():
        kind = to_camel(name)
        if kind in _NOT_CARRIED:
            message = f"{where} is {kind}: promptbus carries text and function parts only"
        else:
            message = (
                f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': "
                "Cannot find field."
            )
        raise ValidationFailed(message, field=f"{where}.{kind}")
    return part


def _texts(content: Content, where: str) -> str:
    parts = [_checked(part, f"{where}.parts[{i}]") for i, part in enumerate(content.parts)]
    return "\n".join(p.text for p in parts if p.text is not None and not p.thought)


def _answered(pending: list[tuple[str, str]], result: FunctionResponse, where: str) -> str:
    """The id of the call `result` answers, taken off `pending` (id, name) pairs."""
    for index in range(len(pending) - 1, -1, -1):
        given, name = pending[index]
        if (result.id or given) == given and name == result.name:
            del pending[index]
            return given
    raise ValidationFailed(
        f"{where}: functionResponse {result.name!r} answers no earlier functionCall", field=where
    )


def _model_turn(content: Content, where: str, turn: int) -> dict[str, Any]:
    text = _texts(content, where)
    calls = [
        {
            "id": call.id or call_id(turn, index, call.name),
            "name": call.name,
            "arguments": call.args or {},
        }
        for index, call in enumerate(p.function_call for p in content.parts if p.function_call)
    ]
    if not text and not calls:
        raise ValidationFailed(f"{where} has no text", field=f"{where}.parts")
    return {"role": "assistant", "content": text, **({"tool_calls": calls} if calls else {})}


def _user_turn(
    content: Content, where: str, pending: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    text = _texts(content, where)
    out: list[dict[str, Any]] = []
    for i, part in enumerate(content.parts):
        if part.function_call is not None:
            raise ValidationFailed(
                f"{where}.parts[{i}]: a functionCall belongs to a model turn", field=where
            )
        if (result := part.function_response) is not None:
            answered = _answered(pending, result, f"{where}.parts[{i}]")
            body = orjson.dumps(result.response or {}).decode()
            out.append({"role": "tool", "tool_call_id": answered, "content": body})
    if text:
        out.append({"role": "user", "content": text})
    if not out:
        raise ValidationFailed(f"{where} has no text", field=f"{where}.parts")
    return out


def conversation(contents: list[Content], system: Content | None = None) -> tuple[Message, ...]:
    """The turns (after the system instruction, if any) as promptbus messages."""
    turns: list[dict[str, Any]] = []
    if system is not None:
        if not (text := _texts(system, "systemInstruction")):
            raise ValidationFailed("systemInstruction has no text", field="systemInstruction")
        turns.append({"role": "system", "content": text})
    pending: list[tuple[str, str]] = []
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        if content.role == "model":
            turn = _model_turn(content, where, len(turns))
            pending.extend((call["id"], call["name"]) for call in turn.get("tool_calls", ()))
            turns.append(turn)
        elif content.role in (None, "user", "function"):
            # "function": the role older clients give a turn of function responses.
            turns.extend(_user_turn(content, where, pending))
        else:
            raise ValidationFailed(
                f"{where}.role must be 'user' or 'model', not {content.role!r}",
                field=f"{where}.role",
            )
    try:
        return tuple(Message.model_validate(turn) for turn in turns)
    except ValidationError as exc:  # a text past promptbus's bound, a call it cannot carry
        raise validation_failed(exc) from exc
