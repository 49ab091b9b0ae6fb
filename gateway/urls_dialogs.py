"""Console URLs of the gateway details dialogs (expiration, duplicate, delete, enable/disable).
The API key dialogs' URLs are `keys.urls.api_key_urlpatterns`, included right after these."""

from django.urls import path

from gateway import views_dialogs as views

urlpatterns = [
    path("gateways/<int:pk>/expiration/", views.gateway_expiration, name="gateway-expiration"),
    path("gateways/<int:pk>/duplicate/", views.gateway_duplicate_view, name="gateway-duplicate"),
    path("gateways/<int:pk>/status/", views.gateway_status, name="gateway-status"),
    path("gateways/<int:pk>/delete/", views.gateway_delete_view, name="gateway-delete"),
]
