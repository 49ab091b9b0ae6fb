"""URLs of the gateways part of the management API, under /api/v1/."""

from django.urls import path

from gateway import api

urlpatterns: list = [
    path("gateways", api.GatewayListView.as_view(), name="api-gateways"),
    path("gateways/<int:pk>", api.GatewayDetailView.as_view(), name="api-gateway"),
    path("gateways/<int:pk>/duplicate", api.GatewayDuplicateView.as_view(), name="api-gateway-duplicate"),
]
