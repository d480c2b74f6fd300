"""Schedule overage reporting to Stripe with django-celery-beat (editable in admin):

- 02:30 UTC nightly, after the 02:00 usage monitor: new overage units of current periods
  and of periods closed in the last few days;
- 00:15 UTC daily, the period-close run: periods end at 00:00 UTC, so this reports the
  last units of a period that just closed while Stripe's invoice is still a draft.

Running this again keeps ops' edits.
"""

from django.db import migrations

SCHEDULES = [
    ("Stripe overage report (nightly)", "30", "2", '{"trigger": "nightly"}'),
    ("Stripe overage report (period close)", "15", "0", '{"trigger": "period_close"}'),
]


def schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, minute, hour, kwargs in SCHEDULES:
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
        )
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={
                "task": "billing.tasks.report_overage",
                "crontab": crontab,
                "kwargs": kwargs,
                "description": "Reports new overage units to Stripe Billing Meters; see Billing > Billing events.",
            },
        )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=[name for name, *_ in SCHEDULES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_stripe_billing"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(schedule, unschedule),
    ]
