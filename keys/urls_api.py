"""URLs of the API keys part of the management API, under /api/v1/."""

from django.urls import path

from keys import api

urlpatterns: list = [
    path("gateways/<int:pk>/api-keys", api.GatewayApiKeyListView.as_view(), name="api-gateway-api-keys"),
    path("api-keys", api.ApiKeyListView.as_view(), name="api-api-keys"),
    path("api-keys/<int:pk>", api.ApiKeyDetailView.as_view(), name="api-api-key"),
    path("api-keys/<int:pk>/revoke", api.ApiKeyRevokeView.as_view(), name="api-api-key-revoke"),
    path("api-keys/<int:pk>/rotate", api.ApiKeyRotateView.as_view(), name="api-api-key-rotate"),
]
