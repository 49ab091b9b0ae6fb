"""Resource groups, memberships, gateways, providers and models (SPEC §1)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from core.crypto import decrypt, encrypt
from core.permissions import RestrictedManager, Role

__all__ = ["Gateway", "GatewayStatus", "Membership", "Model", "Provider", "ProviderKind", "ResourceGroup", "Role"]


class ResourceGroup(models.Model):
    """A set of gateways with members, each holding one role (Zenlayer's resource groups)."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RestrictedManager()
    policy_group_paths = ("id",)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """One user's role in one resource group."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    resource_group = models.ForeignKey(ResourceGroup, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RestrictedManager()
    policy_group_paths = ("resource_group_id",)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "resource_group"], name="membership_unique_user_group"),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.resource_group}"


class ProviderKind(models.TextChoices):
    """The upstream API dialects aigw speaks."""

    MOCK = "mock", "Built-in mock"
    OPENAI = "openai", "OpenAI-compatible"


class Provider(models.Model):
    """An upstream LLM API and its credential, encrypted at rest (Fernet, see core.crypto).

    `settings` holds kind-specific options, e.g. `{"latency_ms": 20}` for the mock provider.
    """

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    base_url = models.URLField(blank=True, help_text="e.g. https://api.openai.com/v1")
    credential_encrypted = models.TextField(blank=True, editable=False)
    settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RestrictedManager()
    policy_catalog = True  # every signed-in user reads it; platform admins write it

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def set_credential(self, credential: str) -> None:
        """Encrypt and keep `credential` (an upstream API key); an empty string clears it."""
        self.credential_encrypted = encrypt(credential) if credential else ""

    def get_credential(self) -> str:
        """The decrypted upstream credential, or "" when none is set."""
        return decrypt(self.credential_encrypted) if self.credential_encrypted else ""


class Model(models.Model):
    """A model name applications ask for, routed to one provider, priced per token type.

    Prices are USD per million tokens. They are filled from the genai-prices library when the
    model is known to it (`price_source="genai-prices"`) and can be overridden per model
    (`price_source="custom"`). A missing cached-input or cache-write price bills those tokens
    at the input price.
    """

    class PriceSource(models.TextChoices):
        GENAI_PRICES = "genai-prices", "genai-prices library"
        CUSTOM = "custom", "Set by an admin"
        NONE = "none", "No price known"

    name = models.CharField(max_length=200, unique=True, help_text="What applications send as `model`.")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="models")
    upstream_model = models.CharField(max_length=200, help_text="The model name sent to the provider.")
    input_price_per_mtok = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    cached_input_price_per_mtok = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    cache_write_price_per_mtok = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    output_price_per_mtok = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    price_source = models.CharField(max_length=16, choices=PriceSource.choices, default=PriceSource.NONE)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RestrictedManager()
    policy_catalog = True

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def price_line(self) -> str:
        """A one-line summary such as `$0.15 in · $0.075 cached · $0.6 out per 1M tokens`."""
        if self.input_price_per_mtok is None and self.output_price_per_mtok is None:
            return "no price"

        def fmt(value: Decimal | None) -> str:
            return "—" if value is None else f"${value.normalize():f}"

        return (
            f"{fmt(self.input_price_per_mtok)} in · {fmt(self.cached_input_price_per_mtok)} cached · "
            f"{fmt(self.output_price_per_mtok)} out per 1M tokens"
        )


class GatewayStatus(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    ENABLED = "enabled", "Enabled"
    DISABLED = "disabled", "Disabled"


class Gateway(models.Model):
    """A named AI gateway in one resource group, with its models and API keys.

    Its models are explicit (SPEC §1): `all_models` True serves every enabled model of the
    catalog; otherwise exactly `allowed_models`, and an empty list serves none (removing the last
    model never widens a gateway). A deleted gateway keeps its row (`deleted_at` set) so that
    usage and audit records stay readable; its keys stop working.
    """

    resource_group = models.ForeignKey(ResourceGroup, on_delete=models.PROTECT, related_name="gateways")
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=GatewayStatus.choices, default=GatewayStatus.ENABLED)
    all_models = models.BooleanField(
        default=False, help_text="Serve every enabled model of the catalog, instead of `allowed_models` only."
    )
    allowed_models = models.ManyToManyField(Model, blank=True, related_name="gateways")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = RestrictedManager()
    policy_group_paths = ("resource_group_id",)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["resource_group", "name"],
                condition=models.Q(deleted_at__isnull=True),
                name="gateway_unique_live_name_per_group",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def serves_requests(self) -> bool:
        """True when the gateway is enabled and not deleted."""
        return self.status == GatewayStatus.ENABLED and self.deleted_at is None
