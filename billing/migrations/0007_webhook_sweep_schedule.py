"""Every 5 minutes, queue Stripe events that were stored but never queued (editable in admin)."""

from django.db import migrations

NAME = "Stripe webhook events: sweep the unqueued"


def schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": "billing.tasks.sweep_stripe_events",
            "interval": every,
            "description": "Processes webhook events stored while the broker was down.",
        },
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_overage_report_schedule")]

    operations = [migrations.RunPython(schedule, unschedule)]
