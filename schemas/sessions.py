"""A kept conversation, as GET /v1/sessions/{id} shows it."""

from typing import Literal

from pydantic import Field

from schemas._base import Envelope
from schemas.generate import Message


class SessionView(Envelope):
    """A session's kept messages, oldest first, and the seconds until it expires."""

    id: str
    object: Literal["session"] = "session"
    messages: tuple[Message, ...]
    summary: str | None = Field(
        default=None, description="The running summary of older turns (memory 'summary')"
    )
    ttl_s: float = Field(ge=0, description="Seconds until it expires, unless a turn renews it")
