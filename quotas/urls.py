"""Console URLs of a gateway's limits: the Limits tab's three saves and the Manage token quota
dialog. `config.urls` includes them right after the gateway details page's own URLs."""

from django.urls import path

from quotas import views

urlpatterns = [
    path(
        "gateways/<int:pk>/limits/token-quota/",
        views.gateway_limit_edit,
        {"kind": "token-quota"},
        name="gateway-token-quota",
    ),
    path(
        "gateways/<int:pk>/limits/spend-budget/",
        views.gateway_limit_edit,
        {"kind": "spend-budget"},
        name="gateway-spend-budget",
    ),
    path(
        "gateways/<int:pk>/limits/rate-limit/",
        views.gateway_limit_edit,
        {"kind": "rate-limit"},
        name="gateway-rate-limit",
    ),
    path("gateways/<int:pk>/token-quota/", views.gateway_token_quota, name="gateway-manage-token-quota"),
]
