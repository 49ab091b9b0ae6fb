"""The beat schedule of the limits engine's jobs, as django-celery-beat rows (SPEC §8).

- `quotas.close_periods` hourly at minute 15 (UTC): the window that ended at 00:00 UTC is closed
  once the requests still in flight at the boundary (up to the upstream timeout, 10 minutes by
  default) have been written as usage events.
- `quotas.mark_expired_keys` every minute.
- `quotas.reconcile_counters` every 5 minutes.

Each task message expires after one interval, so a backlog is never replayed: the next run
covers it. Admins may change the rows (Django admin or SQL); this migration does not overwrite
a row that already exists.
"""

from zoneinfo import ZoneInfo

from django.db import migrations
from django.utils import timezone

INTERVALS = [
    # (name, task, every, period, description)
    ("quotas.mark_expired_keys", "quotas.mark_expired_keys", 60, "seconds", "Mark API keys past expires_at expired."),
    ("quotas.reconcile_counters", "quotas.reconcile_counters", 300, "seconds", "Raise Redis counters to the events."),
]
CRONTABS = [
    # (name, task, minute, expire_seconds, description)
    ("quotas.close_periods", "quotas.close_periods", "15", 3600, "Close ended spend-budget and token-quota periods."),
]
SECONDS = {"seconds": 1, "minutes": 60}


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")

    for name, task, every, period, description in INTERVALS:
        interval = IntervalSchedule.objects.filter(every=every, period=period).first()
        if interval is None:
            interval = IntervalSchedule.objects.create(every=every, period=period)
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={
                "task": task,
                "interval": interval,
                "expire_seconds": every * SECONDS[period],
                "description": description,
            },
        )
    for name, task, minute, expire_seconds, description in CRONTABS:
        cron = {"minute": minute, "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
        crontab = CrontabSchedule.objects.filter(**cron, timezone=ZoneInfo("UTC")).first()
        if crontab is None:
            crontab = CrontabSchedule.objects.create(**cron, timezone=ZoneInfo("UTC"))
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={
                "task": task,
                "crontab": crontab,
                "expire_seconds": expire_seconds,
                "description": description,
            },
        )
    # A running beat reloads its schedule when this timestamp changes.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    names = [row[0] for row in INTERVALS + CRONTABS]
    PeriodicTask.objects.filter(name__in=names).delete()
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("quotas", "0002_limits"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(create_schedule, remove_schedule),
    ]
