"""Budgets: USD per UTC day or month, per tenant and per key, checked before a call is made."""

from pipeline.budgets.counters import MemorySpend, RedisSpend, Spend
from pipeline.budgets.guard import BudgetGuard, ThresholdCrossed
from pipeline.budgets.periods import Window, window
from pipeline.budgets.rules import BudgetRule, BudgetRules

__all__ = [
    "BudgetGuard",
    "BudgetRule",
    "BudgetRules",
    "MemorySpend",
    "RedisSpend",
    "Spend",
    "ThresholdCrossed",
    "Window",
    "window",
]
