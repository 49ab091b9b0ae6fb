"""URLs of resource groups, members, providers and models in the management API, under /api/v1/."""

from django.urls import path

from gateway import api_groups

urlpatterns: list = [
    path("resource-groups", api_groups.ResourceGroupListView.as_view(), name="api-resource-groups"),
    path("resource-groups/<int:pk>", api_groups.ResourceGroupDetailView.as_view(), name="api-resource-group"),
    path("resource-groups/<int:pk>/members", api_groups.MemberListView.as_view(), name="api-members"),
    path("resource-groups/<int:pk>/members/<int:user_id>", api_groups.MemberDetailView.as_view(), name="api-member"),
    path("providers", api_groups.ProviderListView.as_view(), name="api-providers"),
    path("providers/<int:pk>", api_groups.ProviderDetailView.as_view(), name="api-provider"),
    path("models", api_groups.ModelListView.as_view(), name="api-models"),
    path("models/<int:pk>", api_groups.ModelDetailView.as_view(), name="api-model"),
]
