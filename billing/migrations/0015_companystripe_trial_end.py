"""Stripe's trial end on our copy of the subscription: trial→paid counts the companies
whose trial ended in a window."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0014_tier_alert_levels"),
    ]

    operations = [
        migrations.AddField(
            model_name="companystripe",
            name="trial_end",
            field=models.DateTimeField(
                blank=True,
                help_text=(
                    "When the subscription's trial ends or ended (Stripe's trial_end; when the subscription "
                    "ended during its trial, then). Empty: no trial."
                ),
                null=True,
            ),
        ),
    ]
