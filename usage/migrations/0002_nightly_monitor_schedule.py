"""Schedule the nightly usage monitor at 02:00 UTC with django-celery-beat. Ops can change
the time or pause it in admin (Periodic tasks); running this again keeps their edits."""

from django.db import migrations

TASK_NAME = "Nightly usage monitor"


def schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="2", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "usage.tasks.run_usage_monitor",
            "crontab": crontab,
            "kwargs": '{"trigger": "beat"}',
            "description": "Scans every company's usage against its limits; see Usage > Monitor runs.",
        },
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("usage", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(schedule, unschedule),
    ]
