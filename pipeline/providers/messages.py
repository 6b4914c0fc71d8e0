"""Our conversation as LangChain messages, and a reply's tool calls back as ours."""

import uuid
from collections.abc import Sequence

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import tool_call
from pydantic import ValidationError

from pipeline.errors import InvalidModelOutput
from schemas import Message, Role, ToolCall


def to_langchain(conversation: Sequence[Message]) -> list[BaseMessage]:
    """`conversation` as LangChain messages, tool calls and tool results included."""
    # A tool result carries the name of the call it answers: Gemini's functionResponse
    # needs it, and the request guarantees the call came earlier.
    names: dict[str, str] = {}
    messages: list[BaseMessage] = []
    for message in conversation:
        if message.role is Role.SYSTEM:
            messages.append(SystemMessage(content=message.content))
        elif message.role is Role.USER:
            messages.append(HumanMessage(content=message.content))
        elif message.role is Role.ASSISTANT:
            calls = message.tool_calls or ()
            names.update((c.id, c.name) for c in calls)
            messages.append(
                AIMessage(
                    content=message.content,
                    tool_calls=[tool_call(name=c.name, args=c.arguments, id=c.id) for c in calls],
                )
            )
        else:
            call_id = message.tool_call_id or ""
            messages.append(
                ToolMessage(content=message.content, tool_call_id=call_id, name=names.get(call_id))
            )
    return messages


def call_id(turn: int, index: int, name: str) -> str:
    """The id of the `index`th call of the answer at position `turn` when the provider gave none.

    Deterministic, so that the same answer always names its calls the same, and distinct
    across the turns of one conversation (a request's ids must be).
    """
    return f"call_{turn}_{index}_{name}"


def tool_calls_of(reply: AIMessage, *, turn: int, invented_ids: bool) -> tuple[ToolCall, ...]:
    """The tool calls in `reply`, the answer at position `turn` of its conversation.

    `invented_ids`: the client makes up a random id (a UUID4) where the provider sent none,
    as langchain-google-genai does; such ids are replaced by deterministic ones. A call the
    model garbled (arguments that are not a JSON object, a name no tool can have) is an
    InvalidModelOutput.
    """
    if reply.invalid_tool_calls:
        bad = reply.invalid_tool_calls[0]
        raise InvalidModelOutput(
            f"the model called tool {bad.get('name')!r} with arguments that are not JSON: "
            f"{bad.get('error') or 'unparsable'}"
        )
    calls = []
    for index, raw in enumerate(reply.tool_calls):
        name, given = raw["name"], raw.get("id")
        made_up = not given or (invented_ids and _uuid4(given))
        try:
            calls.append(
                ToolCall(
                    id=call_id(turn, index, name) if made_up else given,
                    name=name,
                    arguments=raw["args"],
                )
            )
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise InvalidModelOutput(
                f"the model's call of tool {name!r} is not one promptbus can carry: "
                f"{where}: {problem['msg']}"
            ) from exc
    return tuple(calls)


def _uuid4(text: str) -> bool:
    """Whether `text` is a UUID4 as `str(uuid.uuid4())` spells it."""
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return False
    return parsed.version == 4 and str(parsed) == text
