"""Template filters of the console."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def usd(value) -> str:
    """A USD amount written exactly, with at least two decimals: `$0.000435`, `$12.50`."""
    if value is None or value == "":
        return "—"
    amount = Decimal(value)
    text = f"{amount.normalize():f}"
    whole, _, fraction = text.partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


@register.filter
def compact(value) -> str:
    """A count for a glance: `950`, `12.3k`, `4.5M`, `1.2B` (exact counts are in the logs)."""
    if value is None or value == "":
        return "—"
    number = int(value)
    for limit, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if abs(number) >= limit:
            text = f"{number / limit:.1f}".removesuffix(".0")
            return f"{text}{suffix}"
    return str(number)
