"""The failover policy row, and the beat entries: probe every region at the policy's
interval (the policy admin keeps the two in step), prune old probes daily."""

from django.db import migrations

PROBE_TASK_NAME = "regions: probe all regions"
PRUNE_TASK_NAME = "regions: prune old probes"


def create(apps, schema_editor):
    FailoverPolicy = apps.get_model("regions", "FailoverPolicy")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    policy, _ = FailoverPolicy.objects.get_or_create(pk=1)
    every, _ = IntervalSchedule.objects.get_or_create(every=policy.probe_interval_seconds, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=PROBE_TASK_NAME,
        defaults={"task": "regions.tasks.probe_regions", "interval": every, "enabled": True},
    )
    daily, _ = IntervalSchedule.objects.get_or_create(every=1, period="days")
    PeriodicTask.objects.update_or_create(
        name=PRUNE_TASK_NAME,
        defaults={"task": "regions.tasks.prune_probes", "interval": daily, "enabled": True},
    )


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[PROBE_TASK_NAME, PRUNE_TASK_NAME]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("regions", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
