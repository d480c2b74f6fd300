"""Schedule the monthly SOC 2 evidence pack (last month's) on the 1st at 04:00 UTC with
django-celery-beat. Ops can change the time or pause it in admin (Periodic tasks);
running this again keeps their edits."""

from django.db import migrations

TASK_NAME = "Monthly SOC 2 evidence pack"


def schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="0", hour="4", day_of_week="*", day_of_month="1", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "compliance.tasks.store_monthly_evidence_pack",
            "crontab": crontab,
            "description": "Builds and stores last month's evidence pack; see Compliance > Evidence packs.",
        },
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("compliance", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(schedule, unschedule),
    ]
