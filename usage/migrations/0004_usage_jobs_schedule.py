"""The beat schedule of the usage jobs, as django-celery-beat rows (SPEC §8):
`usage.rollup_usage` every minute, `usage.purge_usage_events` daily at 03:30 UTC. An existing
row (changed by an admin) is left as it is."""

from zoneinfo import ZoneInfo

from django.db import migrations
from django.utils import timezone


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")

    interval = IntervalSchedule.objects.filter(every=60, period="seconds").first()
    if interval is None:
        interval = IntervalSchedule.objects.create(every=60, period="seconds")
    PeriodicTask.objects.get_or_create(
        name="usage.rollup_usage",
        defaults={
            "task": "usage.rollup_usage",
            "interval": interval,
            "expire_seconds": 60,
            "description": "Recompute the hourly usage rollups of the hours that changed.",
        },
    )
    cron = {"minute": "30", "hour": "3", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
    crontab = CrontabSchedule.objects.filter(**cron, timezone=ZoneInfo("UTC")).first()
    if crontab is None:
        crontab = CrontabSchedule.objects.create(**cron, timezone=ZoneInfo("UTC"))
    PeriodicTask.objects.get_or_create(
        name="usage.purge_usage_events",
        defaults={
            "task": "usage.purge_usage_events",
            "crontab": crontab,
            "expire_seconds": 86400,
            "description": "Delete raw usage events past AIGW_USAGE_RETENTION_DAYS (rollups are kept).",
        },
    )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTask.objects.filter(name__in=["usage.rollup_usage", "usage.purge_usage_events"]).delete()
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0003_usage_rollups"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
