from django.apps import AppConfig


class QuotasConfig(AppConfig):
    name = "quotas"

    def ready(self) -> None:
        """Every write to a token quota, spend budget or rate limit bumps the version of its
        owner's group, which the data plane checks before its next request (`core.freshness`)."""
        from core.freshness import track  # noqa: PLC0415 (models load after apps: Django's rule for ready())
        from quotas.models import RateLimit, SpendBudget, TokenQuota  # noqa: PLC0415
        from quotas.selectors import group_of_limit  # noqa: PLC0415

        for model in (TokenQuota, SpendBudget, RateLimit):
            track(model, group_of_limit)
