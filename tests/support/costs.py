"""Summing usage events' cost in tests."""

from __future__ import annotations

from decimal import Decimal


def events_cost(events) -> Decimal:
    """The cost in USD of a queryset of usage events, summed exactly in Python (SQLite's SUM of
    decimals is a float, which can be 1e-10 USD off)."""
    return sum(events.values_list("cost_usd", flat=True), Decimal(0))
