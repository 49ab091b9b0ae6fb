"""Console URLs of the gateway details dialogs (expiration, duplicate, delete, enable/disable)
and of API keys (the cross-gateway API keys page; create, edit, rotate, revoke)."""

from django.urls import path

from gateway import views_dialogs as views

urlpatterns = [
    path("gateways/<int:pk>/expiration/", views.gateway_expiration, name="gateway-expiration"),
    path("gateways/<int:pk>/duplicate/", views.gateway_duplicate_view, name="gateway-duplicate"),
    path("gateways/<int:pk>/status/", views.gateway_status, name="gateway-status"),
    path("gateways/<int:pk>/delete/", views.gateway_delete_view, name="gateway-delete"),
    path("gateways/<int:pk>/api-keys/new/", views.api_key_create_view, name="api-key-create"),
    path("api-keys/", views.api_key_list, name="api-key-list"),
    path("api-keys/new/", views.api_key_create_any, name="api-key-create-any"),
    path("api-keys/<int:key_pk>/edit/", views.api_key_edit, name="api-key-edit"),
    path("api-keys/<int:key_pk>/rotate/", views.api_key_rotate_view, name="api-key-rotate"),
    path("api-keys/<int:key_pk>/revoke/", views.api_key_revoke_view, name="api-key-revoke"),
]
