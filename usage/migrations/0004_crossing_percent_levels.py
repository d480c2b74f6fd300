"""Threshold crossings at any percent level (the tier's and the owners' own), recorded at
ingest time or by the monitor. Existing rows keep their meaning: "warning" was the
80 % level (USAGE_WARNING_PERCENT), "exceeded" the 100 % one; all were the monitor's."""

from django.conf import settings
from django.db import migrations, models


def _checks_now(schema_editor):
    """Fire the deferred foreign-key checks the row changes queued, so the schema change
    that follows in this transaction is allowed ("pending trigger events" otherwise)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        schema_editor.execute("SET CONSTRAINTS ALL DEFERRED")


def _to_percent(apps, schema_editor):
    Crossing = apps.get_model("usage", "ThresholdCrossing")
    Crossing.objects.filter(level="warning").update(level=str(settings.USAGE_WARNING_PERCENT))
    Crossing.objects.filter(level="exceeded").update(level="100")
    _checks_now(schema_editor)


def _to_names(apps, schema_editor):
    """Back to two levels: per company, feature and period the highest level below 100
    becomes "warning", the lowest at or above it "exceeded"; other levels go."""
    Crossing = apps.get_model("usage", "ThresholdCrossing")
    keep: dict[tuple, dict[str, tuple[int, int]]] = {}
    for pk, company, feature, start, level in Crossing.objects.values_list(
        "pk", "company_id", "feature_id", "period_start", "level"
    ):
        percent = int(level)
        name = "exceeded" if percent >= 100 else "warning"
        slot = keep.setdefault((company, feature, start), {})
        best = slot.get(name)
        better = best is None or (percent < best[1] if name == "exceeded" else percent > best[1])
        if better:
            slot[name] = (pk, percent)
    kept = {pk: name for slot in keep.values() for name, (pk, _) in slot.items()}
    Crossing.objects.exclude(pk__in=kept).delete()
    for name in ("warning", "exceeded"):
        Crossing.objects.filter(pk__in=[pk for pk, n in kept.items() if n == name]).update(level=name)
    _checks_now(schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ('usage', '0003_company_moved_to_accounts'),
    ]

    operations = [
        migrations.AddField(
            model_name='monitorrun',
            name='missed_by_ingest',
            field=models.PositiveIntegerField(default=0, help_text='New crossings this run found that ingestion had not recorded (should be 0).'),
        ),
        migrations.AddField(
            model_name='thresholdcrossing',
            name='source',
            field=models.CharField(choices=[('ingest', 'Ingestion (the request that crossed it)'), ('monitor', 'Nightly monitor (missed by ingestion)')], default='monitor', max_length=10),
        ),
        migrations.AlterField(
            model_name='thresholdcrossing',
            name='source',
            field=models.CharField(choices=[('ingest', 'Ingestion (the request that crossed it)'), ('monitor', 'Nightly monitor (missed by ingestion)')], default='ingest', max_length=10),
        ),
        migrations.RunPython(_to_percent, _to_names, elidable=False),
        migrations.AlterField(
            model_name='thresholdcrossing',
            name='level',
            field=models.PositiveSmallIntegerField(help_text='Percent of the included quantity reached; 100 and above are breaches.'),
        ),
        migrations.AlterField(
            model_name='thresholdcrossing',
            name='notified',
            field=models.BooleanField(default=True, help_text='False when a higher level was crossed at the same moment and alerted instead.'),
        ),
    ]
