"""The audit trail and the idempotency records move to core (state only): their tables stay the
ones the usage and gateway apps created (`usage_auditevent`, `gateway_idempotencyrecord`)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("gateway", "0004_gateway_all_models"),
        ("usage", "0005_usage_rollup_day"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    state_operations = [
        migrations.CreateModel(
            name="AuditEvent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("created_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ("actor_name", models.CharField(blank=True, max_length=150)),
                (
                    "via",
                    models.CharField(
                        choices=[
                            ("console", "Console"),
                            ("api", "API"),
                            ("command", "Management command"),
                            ("system", "aigw itself"),
                        ],
                        default="system",
                        max_length=16,
                    ),
                ),
                ("action", models.CharField(max_length=64)),
                ("target_type", models.CharField(max_length=32)),
                ("target_id", models.CharField(max_length=64)),
                ("target_name", models.CharField(blank=True, max_length=200)),
                ("before", models.JSONField(blank=True, null=True)),
                ("after", models.JSONField(blank=True, null=True)),
                ("ip_address", models.GenericIPAddressField(blank=True, null=True)),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "resource_group",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="gateway.resourcegroup",
                    ),
                ),
            ],
            options={
                "db_table": "usage_auditevent",
                "ordering": ["-created_at", "-id"],
                "indexes": [
                    models.Index(fields=["resource_group", "-created_at"], name="audit_group_time"),
                    models.Index(fields=["target_type", "target_id", "-created_at"], name="audit_target_time"),
                ],
            },
        ),
        migrations.CreateModel(
            name="IdempotencyRecord",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=255)),
                ("fingerprint", models.CharField(help_text="SHA-256 of method, path and body.", max_length=64)),
                ("status_code", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("response_body", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "db_table": "gateway_idempotencyrecord",
                "constraints": [models.UniqueConstraint(fields=("user", "key"), name="idempotency_unique_user_key")],
            },
        ),
    ]

    operations = [migrations.SeparateDatabaseAndState(state_operations=state_operations)]
