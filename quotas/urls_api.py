"""URLs of the limits part of the management API, under /api/v1/."""

from django.urls import path

from quotas.api import QuotaView
from quotas.api_limits import LimitsView, RateLimitView, SpendBudgetView, TokenQuotaView

urlpatterns: list = [path("quotas", QuotaView.as_view(), name="api-quotas")]
for _owners in ("api-keys", "gateways", "resource-groups"):
    _kind = {"owners": _owners}
    urlpatterns += [
        path(f"{_owners}/<int:pk>/limits", LimitsView.as_view(), _kind, name=f"api-{_owners}-limits"),
        path(
            f"{_owners}/<int:pk>/limits/token-quota", TokenQuotaView.as_view(), _kind, name=f"api-{_owners}-token-quota"
        ),
        path(
            f"{_owners}/<int:pk>/limits/spend-budget",
            SpendBudgetView.as_view(),
            _kind,
            name=f"api-{_owners}-spend-budget",
        ),
        path(f"{_owners}/<int:pk>/limits/rate-limit", RateLimitView.as_view(), _kind, name=f"api-{_owners}-rate-limit"),
    ]
