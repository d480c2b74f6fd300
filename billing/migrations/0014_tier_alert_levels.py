"""Per-tier usage alert levels (percent of each included quantity); every tier starts
with the two levels the monitor always used, 80 % and 100 %."""

from django.db import migrations, models

import billing.plans.models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0013_entitlement_modes_overrides'),
    ]

    operations = [
        migrations.AddField(
            model_name='tier',
            name='alert_levels',
            field=models.JSONField(default=billing.plans.models.default_alert_levels, help_text='Usage alert levels in percent of each included quantity, e.g. [50, 80, 100, 150].'),
        ),
    ]
