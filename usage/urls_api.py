"""URLs of usage events, usage aggregates and audit events in the management API, under /api/v1/."""

urlpatterns: list = []
