"""Console URLs of API keys and of personal API tokens.

`config.urls` includes the three lists where the console had these URLs before the API key pages
moved here from `gateway/`, so that every URL keeps its place in the order:
`budget_urlpatterns` (Edit budget) right after the gateway details page, `api_key_urlpatterns`
(Create, the API keys page, Edit, Rotate, Revoke) after the gateway details dialogs, and
`urlpatterns` (personal API tokens) after the groups' and providers' pages.
"""

from django.urls import path

from keys import views

budget_urlpatterns = [
    path(
        "gateways/<int:pk>/api-keys/<int:key_pk>/budget/",
        views.api_key_budget_edit,
        name="api-key-budget",
    ),
]

api_key_urlpatterns = [
    path("gateways/<int:pk>/api-keys/new/", views.api_key_create_view, name="api-key-create"),
    path("api-keys/", views.api_key_list, name="api-key-list"),
    path("api-keys/new/", views.api_key_create_any, name="api-key-create-any"),
    path("api-keys/<int:key_pk>/edit/", views.api_key_edit, name="api-key-edit"),
    path("api-keys/<int:key_pk>/rotate/", views.api_key_rotate_view, name="api-key-rotate"),
    path("api-keys/<int:key_pk>/revoke/", views.api_key_revoke_view, name="api-key-revoke"),
]

urlpatterns = [
    path("account/api-tokens/", views.api_token_list, name="api-token-list"),
    path("account/api-tokens/<int:pk>/revoke/", views.api_token_revoke_view, name="api-token-revoke"),
]
