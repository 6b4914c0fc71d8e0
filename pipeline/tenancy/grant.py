"""What a key grants: the tenant it acts for and its limits, as the lookup finds them."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Grant:
    """A key's tenant and limits; `usable` is False once it is revoked or its tenant disabled."""

    key_id: str
    tenant: str
    digest: str
    # None: every model and route of the catalogue.
    models: frozenset[str] | None
    rpm: int | None
    tpm: int | None
    revoked: bool
    tenant_disabled: bool

    @property
    def usable(self) -> bool:
        """Whether a request may come with this key."""
        return not (self.revoked or self.tenant_disabled)

    def allows(self, model: str) -> bool:
        """Whether the key may call `model` (an alias, provider model or route name)."""
        return self.models is None or model in self.models
