"""URLs of resource groups, members, providers and models in the management API, under /api/v1/."""

urlpatterns: list = []
