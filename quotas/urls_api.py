"""URLs of the limits part of the management API, under /api/v1/."""

from django.urls import path

from quotas.api import QuotaView

urlpatterns: list = [
    path("quotas", QuotaView.as_view(), name="api-quotas"),
]
