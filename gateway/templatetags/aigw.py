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
