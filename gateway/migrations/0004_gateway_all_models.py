"""A gateway's models become explicit (SPEC §1): `all_models` True serves every enabled model;
otherwise exactly its list, and an empty list serves none. Gateways whose list was empty meant
"every model" before, so they get `all_models` True and keep serving what they served."""

from django.db import migrations, models


def empty_lists_mean_all_models(apps, schema_editor):
    Gateway = apps.get_model("gateway", "Gateway")
    Gateway.objects.filter(allowed_models__isnull=True).update(all_models=True)


class Migration(migrations.Migration):
    dependencies = [("gateway", "0003_idempotency_record")]

    operations = [
        migrations.AddField(
            model_name="gateway",
            name="all_models",
            field=models.BooleanField(
                default=False, help_text="Serve every enabled model of the catalog, instead of `allowed_models` only."
            ),
        ),
        migrations.RunPython(empty_lists_mean_all_models, migrations.RunPython.noop),
    ]
