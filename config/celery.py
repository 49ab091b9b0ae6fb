"""The Celery app of aigw: `celery -A config worker --beat` runs the background jobs.

Configuration comes from the Django settings whose names start with `CELERY_` (broker: Redis in
production, kombu's SQLAlchemy transport on SQLite on the embedded default); the schedule is
read from the database by django-celery-beat's DatabaseScheduler. Tasks are found in each
app's `tasks.py`.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("aigw")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
