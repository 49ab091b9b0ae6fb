"""Every install starts with the built-in mock provider and its models mock/echo and mock/large."""

from decimal import Decimal

from django.db import migrations

from gateway.mock_catalog import MOCK_MODELS, MOCK_PROVIDER_NAME


def create_mock(apps, schema_editor):
    Provider = apps.get_model("gateway", "Provider")
    Model = apps.get_model("gateway", "Model")
    provider, _ = Provider.objects.get_or_create(name=MOCK_PROVIDER_NAME, defaults={"kind": "mock"})
    for name, (prices, max_output) in MOCK_MODELS.items():
        p_in, p_cached, p_write, p_out = (None if v is None else Decimal(v) for v in prices)
        Model.objects.get_or_create(
            name=name,
            defaults={
                "provider": provider,
                "upstream_model": name,
                "input_price_per_mtok": p_in,
                "cached_input_price_per_mtok": p_cached,
                "cache_write_price_per_mtok": p_write,
                "output_price_per_mtok": p_out,
                "price_source": "custom",
                "max_output_tokens": max_output,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("gateway", "0001_initial")]
    operations = [migrations.RunPython(create_mock, migrations.RunPython.noop)]
