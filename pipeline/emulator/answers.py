"""The deterministic answer both APIs give: `[model] <echo of the last user text> #<digest>`.

Tokens are whitespace-separated words, on the prompt and on the answer alike.
"""

import hashlib
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final, Literal

import orjson

from pipeline.emulator.directives import Directives, JsonFault, strip_directives
from pipeline.emulator.jsondocs import invalid_document, valid_document
from pipeline.emulator.state import Json

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


@dataclass(frozen=True)
class Answer:
    """The answer text, its length in tokens and why it ended."""

    text: str
    tokens: int
    finish: Literal["stop", "length"]


def compose(prompt: Prompt, directives: Directives) -> Answer:
    """Build the answer: plain text or a JSON document, cut by stop sequences and max tokens."""
    if directives.empty:
        return Answer("", 0, "stop")
    text = " ".join([f"[{prompt.model}]", *prompt.echo.split(), f"#{prompt.digest[:8]}"])
    mode = prompt.json_mode or (JsonMode() if directives.json else None)
    if mode is not None:
        text = _json_text(prompt, mode, directives.json, text)
    cuts = [index for stop in prompt.stop if stop and (index := text.find(stop)) >= 0]
    if cuts:
        text = text[: min(cuts)]
    words = text.split()
    limit = prompt.max_tokens
    if limit is not None and 0 < limit < len(words):
        return Answer(" ".join(words[:limit]), limit, "length")
    return Answer(text, len(words), "stop")


def _json_text(prompt: Prompt, mode: JsonMode, fault: JsonFault | None, plain: str) -> str:
    """Return the JSON answer, broken as the json directive asks."""
    repaired = fault is not None and fault.endswith("_then_valid") and len(prompt.user_turns) > 1
    kind = None if fault is None or repaired else fault.removesuffix("_then_valid")
    seed = " ".join(prompt.echo.split()[:_SEED_WORDS])
    schema = mode.schema if mode.schema is not None else DEFAULT_SCHEMA
    if kind == "invalid":
        document = invalid_document(schema, seed)
    elif mode.schema is None:
        document = {"answer": plain}
    else:
        document = valid_document(schema, seed)
    text = orjson.dumps(document).decode()
    return malformed_text(text) if kind == "malformed" else text


def split_text(text: str) -> list[str]:
    """Split text into a few pieces on word boundaries (one piece if it has one word)."""
    pieces: list[str] = re.findall(r"\s*\S+\s*", text)
    if len(pieces) < 2:
        return [text]
    size = math.ceil(len(pieces) / min(_STREAM_CHUNKS, len(pieces)))
    return ["".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]


def malformed_text(text: str) -> str:
    """Return text that is not JSON: the document cut short."""
    return text[:-1] if text[:1] in ("{", "[", '"') else "{" + text
