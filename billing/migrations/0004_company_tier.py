"""Put every company on a tier; existing companies start on the cheapest one."""

import django.db.models.deletion
from django.db import migrations, models

import accounts.models


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0003_default_catalogue"),
    ]

    operations = [
        migrations.AddField(
            model_name='company',
            name='tier',
            field=models.ForeignKey(default=accounts.models.default_tier_id, on_delete=django.db.models.deletion.PROTECT, related_name='companies', to='billing.tier'),
        ),
    ]
