"""API key expiration choices of the Create AI Gateway dialog (Zenlayer): 7/30/60/90 days,
Long-lived, or a custom date-time; blank means unlimited validity."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

EXPIRES_IN_CHOICES = {
    "7d": ("7 days", timedelta(days=7)),
    "30d": ("30 days", timedelta(days=30)),
    "60d": ("60 days", timedelta(days=60)),
    "90d": ("90 days", timedelta(days=90)),
    "never": ("Long-lived", None),
}


def expires_at_for(choice: str, now: datetime | None = None) -> datetime | None:
    """The UTC expiry for a choice key of EXPIRES_IN_CHOICES ("" counts as "never").

    Raises:
        ValueError: for an unknown choice.
    """
    if choice in ("", "never"):
        return None
    if choice not in EXPIRES_IN_CHOICES:
        raise ValueError(f"unknown expiration {choice!r}; choose one of {', '.join(EXPIRES_IN_CHOICES)}")
    delta = EXPIRES_IN_CHOICES[choice][1]
    assert delta is not None
    return (now or timezone.now()) + delta
