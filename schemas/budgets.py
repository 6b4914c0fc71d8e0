"""Budget events: a tenant's or key's spend passed its soft threshold for the period."""

from typing import Final, Literal

from pydantic import Field

from schemas._base import Envelope

BUDGET_SCHEMA: Final = "promptbus.budget/v1"


class BudgetThreshold(Envelope):
    """Published as `budget.threshold` (completions exchange) and sent to the tenant's
    webhook endpoints that subscribe to it, once per budget and period."""

    schema_: Literal["promptbus.budget/v1"] = Field(default=BUDGET_SCHEMA, alias="schema")
    type: Literal["budget.threshold"] = "budget.threshold"
    tenant: str
    key_id: str | None = Field(default=None, description="None: the tenant's own budget")
    period: Literal["day", "month"]
    window: str = Field(description="The period's id: 2026-12-07 or 2026-12 (UTC)")
    limit_usd: float = Field(ge=0)
    spent_usd: float = Field(ge=0)
    soft_ratio: float = Field(gt=0, le=1)
    renews_at: float = Field(description="Unix time the period ends")
