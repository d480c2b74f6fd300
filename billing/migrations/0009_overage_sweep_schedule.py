"""Every minute, queue overage reports that are due (retries) or stuck in "sending"."""

from django.db import migrations

NAME = "Stripe overage reports: sweep the due"


def schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=NAME,
        defaults={
            "task": "billing.tasks.sweep_billing_events",
            "interval": every,
            "description": "Queues overage reports due for a retry or stuck in sending; stops them 24 h after "
            "the first attempt.",
        },
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_metered_prices_first_attempt")]

    operations = [migrations.RunPython(schedule, unschedule)]
