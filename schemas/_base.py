"""The base model every envelope shares: frozen, strict about unknown fields."""

from pydantic import BaseModel, ConfigDict


class Envelope(BaseModel):
    """A frozen pydantic model that rejects unknown fields and dumps by its wire names."""

    # serialize_by_alias: every dump, nested ones included, uses the wire's field names
    # (`schema`, not `schema_`), so a dumped envelope always validates again.
    model_config = ConfigDict(
        frozen=True, extra="forbid", serialize_by_alias=True, validate_by_name=True
    )
