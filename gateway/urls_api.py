"""URLs of the gateways and API keys part of the management API, under /api/v1/."""

from django.urls import path

from gateway import api

urlpatterns: list = [
    path("gateways", api.GatewayListView.as_view(), name="api-gateways"),
    path("gateways/<int:pk>", api.GatewayDetailView.as_view(), name="api-gateway"),
    path("gateways/<int:pk>/duplicate", api.GatewayDuplicateView.as_view(), name="api-gateway-duplicate"),
    path("gateways/<int:pk>/api-keys", api.GatewayApiKeyListView.as_view(), name="api-gateway-api-keys"),
    path("api-keys", api.ApiKeyListView.as_view(), name="api-api-keys"),
    path("api-keys/<int:pk>", api.ApiKeyDetailView.as_view(), name="api-api-key"),
    path("api-keys/<int:pk>/revoke", api.ApiKeyRevokeView.as_view(), name="api-api-key-revoke"),
    path("api-keys/<int:pk>/rotate", api.ApiKeyRotateView.as_view(), name="api-api-key-rotate"),
]
