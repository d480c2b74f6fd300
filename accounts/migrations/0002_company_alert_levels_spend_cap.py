"""The owners' own usage alert levels and monthly spend cap, set on the account page."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='company',
            name='alert_levels',
            field=models.JSONField(blank=True, default=list, help_text="The owners' own usage alert levels (percent), on top of the tier's."),
        ),
        migrations.AddField(
            model_name='company',
            name='spend_cap',
            field=models.PositiveBigIntegerField(blank=True, help_text='Most overage money per period in minor units; at the cap overage is refused. Empty: no cap.', null=True),
        ),
    ]
