"""Console URLs of personal API tokens."""

from django.urls import path

from keys import views

urlpatterns = [
    path("account/api-tokens/", views.api_token_list, name="api-token-list"),
    path("account/api-tokens/<int:pk>/revoke/", views.api_token_revoke_view, name="api-token-revoke"),
]
