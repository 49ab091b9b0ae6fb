"""The AuditEvent model moves to core (state only): its table `usage_auditevent` stays."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("usage", "0005_usage_rollup_day"), ("core", "0001_initial")]

    operations = [migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="AuditEvent")])]
