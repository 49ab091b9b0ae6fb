"""The IdempotencyRecord model moves to core (state only): its table `gateway_idempotencyrecord` stays."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("gateway", "0004_gateway_all_models"), ("core", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="IdempotencyRecord")])
    ]
