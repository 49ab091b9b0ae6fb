"""Console URLs of usage: the dashboard, the logs and the audit trail."""

from django.urls import path

from usage import views

urlpatterns = [
    path("usage/", views.usage_dashboard, name="usage-dashboard"),
    path("usage/logs/", views.usage_logs, name="usage-logs"),
    path("usage/logs/<int:pk>/", views.usage_event_detail, name="usage-event"),
    path("audit/", views.audit_trail, name="audit-trail"),
]
