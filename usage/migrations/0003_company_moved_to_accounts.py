"""Company and its API keys moved from billing to accounts; no table changes."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('usage', '0002_nightly_monitor_schedule'),
    ]

    operations = [
        # The tables stay where they are: only Django's picture of them changes.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='thresholdcrossing',
                    name='company',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='threshold_crossings', to='accounts.company'),
                ),
                migrations.AlterField(
                    model_name='usagecounter',
                    name='company',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='usage_counters', to='accounts.company'),
                ),
                migrations.AlterField(
                    model_name='usageevent',
                    name='api_key',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='accounts.companyapikey'),
                ),
                migrations.AlterField(
                    model_name='usageevent',
                    name='company',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='usage_events', to='accounts.company'),
                ),
            ],
            database_operations=[],
        ),
    ]
