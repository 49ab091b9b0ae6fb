"""URLs of usage events, usage aggregates and audit events in the management API, under /api/v1/."""

from django.urls import path

from usage import api

urlpatterns: list = [
    path("usage-events", api.UsageEventListView.as_view(), name="api-usage-events"),
    path("usage-events/<int:pk>", api.UsageEventDetailView.as_view(), name="api-usage-event"),
    path("usage/aggregates", api.UsageAggregatesView.as_view(), name="api-usage-aggregates"),
    path("audit-events", api.AuditEventListView.as_view(), name="api-audit-events"),
    path("audit-events/<int:pk>", api.AuditEventDetailView.as_view(), name="api-audit-event"),
]
