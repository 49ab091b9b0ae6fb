"""Console URLs of resource groups and members, providers and models."""

from django.urls import path

from gateway import views_groups as views

urlpatterns = [
    path("groups/", views.group_list, name="group-list"),
    path("groups/<int:pk>/", views.group_detail, name="group-detail"),
    path("groups/<int:pk>/members/", views.group_invite, name="group-invite"),
    path("groups/<int:pk>/members/<int:user_id>/role/", views.member_role, name="group-member-role"),
    path("groups/<int:pk>/members/<int:user_id>/remove/", views.member_remove, name="group-member-remove"),
    path("groups/<int:pk>/rename/", views.group_rename, name="group-rename"),
    path("groups/<int:pk>/delete/", views.group_delete, name="group-delete"),
    path("providers/", views.provider_list, name="provider-list"),
    path("providers/<int:pk>/", views.provider_detail, name="provider-detail"),
    path("providers/<int:pk>/edit/", views.provider_edit, name="provider-edit"),
    path("providers/<int:pk>/delete/", views.provider_remove, name="provider-delete"),
    path("providers/<int:pk>/test/", views.provider_test, name="provider-test"),
    path("providers/<int:pk>/models/", views.model_add, name="model-add"),
    path("providers/<int:pk>/models/default-prices/", views.model_default_prices, name="model-default-prices"),
    path("providers/<int:pk>/models/<int:model_pk>/", views.model_edit, name="model-edit"),
    path("providers/<int:pk>/models/<int:model_pk>/delete/", views.model_remove, name="model-delete"),
]
