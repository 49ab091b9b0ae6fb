from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"

    def ready(self) -> None:
        """Every write to a group, gateway, provider or model bumps the version the data plane
        checks before its next request (`core.freshness`)."""
        from core.freshness import track  # noqa: PLC0415 (models load after apps: Django's rule for ready())
        from gateway.models import Gateway, Model, Provider, ResourceGroup  # noqa: PLC0415

        track(Provider)
        track(Model)
        track(ResourceGroup, lambda group: group.pk)
        track(Gateway, lambda gateway: gateway.resource_group_id)
