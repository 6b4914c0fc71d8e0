"""What of a session goes to the model: its newest turns, bounded by count and by tokens.

The bound is LangChain's `trim_messages` (the newest messages that fit `max_tokens`,
starting on a user turn, by its approximate token count), after a cut to `max_turns`.
The request sent holds the history it was given, so its cache key covers that history.
"""

from collections.abc import Sequence
from typing import TypeVar

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, trim_messages
from langchain_core.messages.utils import count_tokens_approximately

from schemas import GenerateRequest, GenerateResponse, GenerationParams, Message, Role

_KEPT_ROLES = (Role.USER, Role.ASSISTANT)
R = TypeVar("R", bound=GenerateRequest)


def trimmed(history: Sequence[Message], *, max_turns: int, max_tokens: int) -> list[Message]:
    """The newest messages of `history` within `max_turns` turns and `max_tokens` tokens."""
    recent = list(history[-2 * max_turns :]) if max_turns > 0 else []
    as_langchain: list[BaseMessage] = [
        (HumanMessage if m.role is Role.USER else AIMessage)(content=m.content, id=str(i))
        for i, m in enumerate(recent)
    ]
    kept = trim_messages(
        as_langchain,
        max_tokens=max_tokens,
        token_counter=count_tokens_approximately,
        strategy="last",
        start_on="human",
        allow_partial=False,
    )
    return [recent[int(str(message.id))] for message in kept]


def with_history(
    request: R,
    history: Sequence[Message],
    *,
    max_turns: int,
    max_tokens: int,
    summary: str | None = None,
) -> R:
    """`request` as sent in its session: its system message (with the summary of older
    turns, if there is one), the kept history, then its own turn."""
    own = request.conversation()
    system = [m.content for m in own if m.role is Role.SYSTEM]
    turn = tuple(m for m in own if m.role is not Role.SYSTEM)
    kept = trimmed(history, max_turns=max_turns, max_tokens=max_tokens)
    if not kept and summary is None:
        return request
    if summary is not None:
        system.append(f"Summary of the conversation before the turns below:\n{summary}")
    head = (Message(role=Role.SYSTEM, content="\n\n".join(system)),) if system else ()
    return request.model_copy(
        update={"messages": (*head, *kept, *turn), "prompt": None, "system": None}
    )


def summary_request(model: str, previous: str | None, older: Sequence[Message]) -> GenerateRequest:
    """The model call that folds `older` turns into the running summary `previous`."""
    said = "\n".join(f"{m.role.value}: {m.content}" for m in older)
    return GenerateRequest(
        model=model,
        messages=(
            Message(
                role=Role.SYSTEM,
                content="You keep a running summary of a conversation: the facts, names, "
                "decisions and open questions a reader needs to carry it on. Be brief.",
            ),
            Message(
                role=Role.USER,
                content=f"Summary so far:\n{previous or '(none)'}\n\nTurns to add:\n{said}\n\n"
                "Write the updated summary.",
            ),
        ),
        params=GenerationParams(temperature=0.0),
    )


def own_turn(request: GenerateRequest) -> list[Message]:
    """The request's own user (and assistant) messages: what its session keeps of it."""
    return [m for m in request.conversation() if m.role in _KEPT_ROLES and m.content]


def turn_of(request: GenerateRequest, response: GenerateResponse) -> list[Message]:
    """What a turn adds to its session: the request's own user turns, then the answer."""
    said = own_turn(request)
    if response.text:
        said.append(Message(role=Role.ASSISTANT, content=response.text))
    return said
