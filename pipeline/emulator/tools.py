"""Tool calls, API-neutral: the functions a request offers and the calls the answer makes."""

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final, Literal

import orjson

from pipeline.emulator.jsondocs import valid_document
from pipeline.emulator.state import BadRequest, Json

ToolChoice = Literal["auto", "none", "required"]
# The pieces an argument string is sent in when the stream's chunk count is not given.
_ARGUMENT_PIECES: Final = 3


@dataclass(frozen=True)
class Function:
    """A function the request offers: its name and the JSON Schema of its arguments."""

    name: str
    # None: the function takes no arguments.
    schema: Json | None = None


@dataclass(frozen=True)
class ToolOffer:
    """The functions a request offers, and how the model may call them."""

    functions: tuple[Function, ...] = ()
    choice: ToolChoice = "auto"
    # False: at most one call per answer.
    parallel: bool = True


@dataclass(frozen=True)
class ToolCall:
    """One call the answer makes."""

    id: str
    name: str
    args: Json

    @cached_property
    def arguments(self) -> str:
        """Return the arguments as a JSON string, as OpenAI sends them."""
        return orjson.dumps(self.args).decode()

    @property
    def tokens(self) -> int:
        """Return the call's length in words (its name and its JSON arguments)."""
        return len(call_text(self.name, self.arguments).split())


def call_text(name: str, arguments: str) -> str:
    """Return the text a function call counts as in a prompt or an answer."""
    return f"{name} {arguments}"


def result_text(response: Any) -> str:
    """Return the content of a Gemini functionResponse: a lone string as it is, else JSON."""
    if isinstance(response, dict) and len(response) == 1:
        [value] = response.values()
        if isinstance(value, str):
            return value
    return response if isinstance(response, str) else orjson.dumps(response).decode()


def plan_calls(offer: ToolOffer, count: int | None, seed: str, digest: str) -> tuple[ToolCall, ...]:
    """Return the calls to make: `count` (the directive's) cycling over the offered functions.

    Without the directive, a call is made only when the request requires one.
    """
    if not offer.functions or offer.choice == "none":
        return ()
    wanted = count if count is not None else int(offer.choice == "required")
    if not offer.parallel:
        wanted = min(wanted, 1)
    calls = []
    for index in range(wanted):
        function = offer.functions[index % len(offer.functions)]
        call_id = hashlib.sha256(f"{digest}:{index}".encode()).hexdigest()[:24]
        calls.append(ToolCall(f"call_{call_id}", function.name, _arguments(function, seed)))
    return tuple(calls)


def _arguments(function: Function, seed: str) -> Json:
    """Return arguments valid against the function's schema ({} when it takes none)."""
    if function.schema is None:
        return {}
    try:
        document = valid_document(function.schema, seed)
    except BadRequest as exc:
        raise BadRequest(f"function {function.name!r}: parameters: {exc}") from exc
    if not isinstance(document, dict):
        raise BadRequest(f"function {function.name!r}: parameters must describe an object")
    return document


def split_arguments(arguments: str, pieces: int | None) -> list[str]:
    """Split an argument string into `pieces` fragments (fewer if it is shorter)."""
    count = max(1, min(pieces or _ARGUMENT_PIECES, len(arguments)))
    size = len(arguments)
    return [arguments[size * i // count : size * (i + 1) // count] for i in range(count)]
