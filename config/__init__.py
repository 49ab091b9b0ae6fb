"""The Django project of aigw: settings, URLs, the ASGI entry point and Celery (no models, no views)."""

# The Celery app is loaded with Django so that `@shared_task` tasks bind to it (Celery's Django guide).
from config.celery import app as celery_app

__all__ = ("celery_app",)
