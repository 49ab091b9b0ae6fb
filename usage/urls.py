"""Console URLs of usage: the dashboard."""

from django.urls import path

from usage import views

urlpatterns = [
    path("usage/", views.usage_dashboard, name="usage-dashboard"),
]
