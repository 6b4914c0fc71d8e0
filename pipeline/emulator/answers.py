"""The deterministic answer both APIs give: `[model] <echo of the last user text> #<digest>`.

A conversation that ends with tool results is answered `[model] tool result: <content>
#<digest>` (one `tool result:` per result); a tool_calls directive, or a request that
requires a call, is answered with tool calls. Tokens are whitespace-separated words, on
the prompt and on the answer alike.
"""

import hashlib
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final, Literal

import orjson

from pipeline.emulator.directives import Directives, parse_directives, strip_directives
from pipeline.emulator.jsondocs import invalid_document, valid_document
from pipeline.emulator.state import BadRequest, Json
from pipeline.emulator.tools import ToolCall, ToolOffer, plan_calls

_ECHO_CHARS: Final = 200
# How many echoed words make the strings of a JSON answer.
_SEED_WORDS: Final = 4
_STREAM_CHUNKS: Final = 3
# What a JSON answer follows when the request gives no schema.
DEFAULT_SCHEMA: Final[Json] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}


@dataclass(frozen=True)
class JsonMode:
    """A request for a JSON answer, following schema (None: any JSON object)."""

    schema: Json | None = None


@dataclass(frozen=True)
class Prompt:
    """What either API's request comes down to."""

    model: str
    # The text of each user turn, in order.
    user_turns: tuple[str, ...]
    # Every text the prompt token count covers (system, user and model turns).
    texts: tuple[str, ...]
    # Everything the answer depends on; its hash is the answer's digest.
    canonical: Json = field(repr=False)
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    json_mode: JsonMode | None = None
    tools: ToolOffer = field(default_factory=ToolOffer)
    # Whether the conversation's last message is a user turn: only those get tool calls.
    ends_with_user: bool = True
    # The content of each tool result the conversation ends with (none: it ends otherwise).
    tool_results: tuple[str, ...] = ()

    @cached_property
    def digest(self) -> str:
        """Return the hex SHA-256 of the canonical request."""
        data = orjson.dumps(self.canonical, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(data).hexdigest()

    @property
    def prompt_tokens(self) -> int:
        """Return the number of words in the prompt."""
        return sum(len(text.split()) for text in self.texts)

    @property
    def echo(self) -> str:
        """Return the last user text without directives, cut to a bounded length."""
        last = self.user_turns[-1] if self.user_turns else ""
        return strip_directives(last)[:_ECHO_CHARS]

    @property
    def seed(self) -> str:
        """Return the few echoed words the strings of generated documents are made of."""
        return " ".join(self.echo.split()[:_SEED_WORDS])


@dataclass(frozen=True)
class Answer:
    """The answer text (or tool calls), its length in tokens and why it ended."""

    text: str
    tokens: int
    finish: Literal["stop", "length", "tool_calls"]
    tool_calls: tuple[ToolCall, ...] = ()


def read_directives(prompt: Prompt) -> Directives:
    """Read the prompt's directives; a tool_calls directive needs tools offered."""
    directives = parse_directives(prompt.user_turns)
    if directives.tool_calls is not None and not prompt.tools.functions:
        raise BadRequest("tool_calls directive needs tools")
    return directives


def compose(prompt: Prompt, directives: Directives) -> Answer:
    """Build the answer: tool calls, or plain text or a JSON document, cut by stop
    sequences and max tokens."""
    if prompt.ends_with_user:
        calls = plan_calls(prompt.tools, directives.tool_calls, prompt.seed, prompt.digest)
        if calls:
            return Answer("", sum(call.tokens for call in calls), "tool_calls", calls)
    if directives.empty:
        return Answer("", 0, "stop")
    if prompt.tool_results:
        said = [f"tool result: {content}" for content in prompt.tool_results]
    else:
        said = prompt.echo.split()
    text = " ".join([f"[{prompt.model}]", *said, f"#{prompt.digest[:8]}"])
    if directives.say is not None:
        text = directives.say
    mode = prompt.json_mode or (JsonMode() if directives.json else None)
    if mode is not None:
        text = _json_text(prompt, mode, directives, text)
    cuts = [index for stop in prompt.stop if stop and (index := text.find(stop)) >= 0]
    if cuts:
        text = text[: min(cuts)]
    words = text.split()
    limit = prompt.max_tokens
    if limit is not None and 0 < limit < len(words):
        return Answer(" ".join(words[:limit]), limit, "length")
    return Answer(text, len(words), "stop")


def _json_text(prompt: Prompt, mode: JsonMode, directives: Directives, plain: str) -> str:
    """Return the JSON answer, its fields set and broken as the directives ask."""
    fault = directives.json
    repaired = fault is not None and fault.endswith("_then_valid") and len(prompt.user_turns) > 1
    kind = None if fault is None or repaired else fault.removesuffix("_then_valid")
    schema = mode.schema if mode.schema is not None else DEFAULT_SCHEMA
    if kind == "invalid":
        document = invalid_document(schema, prompt.seed)
    elif mode.schema is None:
        document = {"answer": plain}
    else:
        document = valid_document(schema, prompt.seed)
    if directives.fields and isinstance(document, dict):
        document = {**document, **dict(directives.fields)}
    text = orjson.dumps(document).decode()
    return malformed_text(text) if kind == "malformed" else text


def split_text(text: str, count: int | None = None) -> list[str]:
    """Split text on word boundaries into `count` pieces (fewer if it has fewer words).

    Without a count, into pieces of a third of the words, rounded up (at most 3 pieces).
    """
    words: list[str] = re.findall(r"\s*\S+\s*", text)
    if len(words) < 2:
        return [text]
    if count is None:
        size = math.ceil(len(words) / min(_STREAM_CHUNKS, len(words)))
        return ["".join(words[i : i + size]) for i in range(0, len(words), size)]
    count, total = min(count, len(words)), len(words)
    return ["".join(words[total * i // count : total * (i + 1) // count]) for i in range(count)]


def malformed_text(text: str) -> str:
    """Return text that is not JSON: the document cut short."""
    return text[:-1] if text[:1] in ("{", "[", '"') else "{" + text
