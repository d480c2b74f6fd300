"""Company moved from billing to accounts; no table changes."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('ops', '0002_sweep_schedule'),
    ]

    operations = [
        # The tables stay where they are: only Django's picture of them changes.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='notification',
                    name='company',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='notifications', to='accounts.company'),
                ),
                migrations.AlterField(
                    model_name='opstask',
                    name='company',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='ops_tasks', to='accounts.company'),
                ),
            ],
            database_operations=[],
        ),
    ]
