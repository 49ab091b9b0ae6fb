"""URLs of the console (HTML). The `/v1/` data plane is routed in config.asgi.

Some apps' console URLs are included in several parts (`keys.urls`), each where those URLs were
before their pages moved into the app, so that the order of the URLs stays as it was."""

from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from gateway import views
from keys import urls as keys_urls

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="gateway-list"), name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("gateways/", views.gateway_list, name="gateway-list"),
    path("gateways/new/", views.gateway_create, name="gateway-create"),
    path("gateways/<int:pk>/", views.gateway_detail, name="gateway-detail"),
    path("", include(keys_urls.budget_urlpatterns)),
    path("gateways/<int:pk>/models/", views.gateway_models_edit, name="gateway-models"),
    path("", include("quotas.urls")),
    path("", include("gateway.urls_dialogs")),
    path("", include(keys_urls.api_key_urlpatterns)),
    path("", include("gateway.urls_groups")),
    path("", include("keys.urls")),
    path("", include("usage.urls")),
    path("api/v1/", include("quotas.urls_api")),
    path("api/v1/", include("gateway.urls_api")),
    path("api/v1/", include("keys.urls_api")),
    path("api/v1/", include("gateway.urls_api_groups")),
    path("api/v1/", include("usage.urls_api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's init script as a file (`?script`): no inline script for the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

handler403 = "core.error_views.permission_denied"
handler404 = "core.error_views.page_not_found"
handler500 = "core.error_views.server_error"
