from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "keys"

    def ready(self) -> None:
        """Every write to an API key bumps its group's version, which the data plane checks
        before its next request (`core.freshness`)."""
        from core.freshness import track  # noqa: PLC0415 (models load after apps: Django's rule for ready())
        from gateway.models import Gateway  # noqa: PLC0415
        from keys.models import ApiKey  # noqa: PLC0415

        track(
            ApiKey,
            lambda key: Gateway.objects.filter(pk=key.gateway_id).values_list("resource_group_id", flat=True).first(),
        )
