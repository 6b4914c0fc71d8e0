"""One upstream call as routing sees it: what it sends, and how its answer is judged."""

import asyncio
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.errors import (
    ContentBlocked,
    EmptyAnswer,
    PromptBlocked,
    PromptbusError,
    StreamInterrupted,
    UpstreamUnavailable,
)
from pipeline.providers.base import ChatProvider, ToolOffer
from schemas import GenerationParams, Message, SafetySetting
from schemas.stages import Generation

# Where a streamed answer's text deltas go, as they arrive.
DeltaSink = Callable[[str], None]

# Finish reasons (lower-cased) that mean the provider withheld the answer.
BLOCKED_REASONS = frozenset(
    {
        "safety",
        "recitation",
        "blocklist",
        "prohibited_content",
        "spii",
        "image_safety",
        "other",
        "content_filter",
    }
)


@dataclass(frozen=True, slots=True)
class Call:
    """What one upstream call sends, whichever deployment takes it."""

    conversation: tuple[Message, ...]
    params: GenerationParams
    response_schema: dict[str, Any] | None = None
    tools: ToolOffer | None = None
    user: str | None = None
    safety_settings: tuple[SafetySetting, ...] | None = None

    def estimated_tokens(self) -> int:
        """A rough token count for rate limits, settled with the real usage afterwards."""
        chars = sum(len(m.content) for m in self.conversation)
        for message in self.conversation:
            for call in message.tool_calls or ():
                chars += len(call.name) + len(orjson.dumps(call.arguments))
        # The tools' schemas go up with every call that offers them.
        for tool in self.tools.tools if self.tools else ():
            chars += len(tool.model_dump_json(exclude_none=True))
        return chars // 4 + (self.params.max_output_tokens or 0) + 1


def judge(generation: Generation) -> None:
    """Refuse a refused prompt or a withheld answer (ContentBlocked), or an empty one.

    An answer of tool calls alone, with no text, is an answer.
    """
    reason = generation.finish_reason
    if generation.prompt_blocked:
        raise PromptBlocked(
            f"the model refused the prompt (block reason {reason})", finish_reason=reason
        )
    if reason in BLOCKED_REASONS:
        raise ContentBlocked(
            f"the model withheld its answer (finish_reason {reason})", finish_reason=reason
        )
    if not generation.text.strip() and not generation.tool_calls:
        raise EmptyAnswer(
            f"the model gave an empty answer (finish_reason {reason})", finish_reason=reason
        )


async def streamed(
    provider: ChatProvider, provider_model: str, call: Call, on_delta: DeltaSink
) -> Generation:
    """One streamed call: deltas to `on_delta`, judged; once a delta is out, no retry."""
    sent = False
    parts = provider.stream(
        provider_model,
        call.conversation,
        call.params,
        response_schema=call.response_schema,
        tools=call.tools,
        user=call.user,
        safety_settings=call.safety_settings,
    )
    try:
        async with aclosing(parts):
            async for part in parts:
                if isinstance(part, str):
                    on_delta(part)
                    sent = True
                    # Chunks that arrived together would otherwise all be parsed before the
                    # listeners run: let them send this delta first.
                    await asyncio.sleep(0)
                else:
                    judge(part)
                    return part
    except PromptbusError as exc:
        if not sent:
            raise
        interrupted = StreamInterrupted(
            f"the stream broke after part of the answer was sent: {exc.message}",
            finish_reason=exc.finish_reason,
        )
        raise interrupted from exc
    raise UpstreamUnavailable("the model's stream ended without an answer")
