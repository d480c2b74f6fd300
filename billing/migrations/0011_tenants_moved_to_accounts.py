"""Company, Membership and CompanyAPIKey now live in accounts (same tables); billing forgets them."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('billing', '0010_invoice_outcome_register'),
        ('ops', '0003_company_moved_to_accounts'),
        ('usage', '0003_company_moved_to_accounts'),
    ]

    operations = [
        # The tables stay where they are: only Django's picture of them changes.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='company',
                    name='tier',
                ),
                migrations.RemoveField(
                    model_name='company',
                    name='users',
                ),
                migrations.AlterField(
                    model_name='companystripe',
                    name='company',
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='stripe', to='accounts.company'),
                ),
                migrations.AlterField(
                    model_name='billingevent',
                    name='company',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='billing_events', to='accounts.company'),
                ),
                migrations.RemoveField(
                    model_name='membership',
                    name='company',
                ),
                migrations.RemoveField(
                    model_name='membership',
                    name='user',
                ),
                migrations.DeleteModel(
                    name='CompanyAPIKey',
                ),
                migrations.DeleteModel(
                    name='Company',
                ),
                migrations.DeleteModel(
                    name='Membership',
                ),
            ],
            database_operations=[],
        ),
    ]
