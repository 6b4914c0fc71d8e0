"""The base model every envelope shares: frozen, strict about unknown fields."""

from pydantic import BaseModel, ConfigDict


class Envelope(BaseModel):
    """A frozen pydantic model that rejects unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")
