"""URLs of the limits part of the management API, under /api/v1/."""

urlpatterns: list = []
