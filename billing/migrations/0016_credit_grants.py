"""Credit grants (money or units of a feature, with an expiry and a reason) and what each
overage report step took from them."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_company_alert_levels_spend_cap'),
        ('billing', '0015_companystripe_trial_end'),
    ]

    operations = [
        migrations.CreateModel(
            name='CreditGrant',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('money', "Money (minor units, the company's currency)"), ('units', 'Units of one feature')], max_length=10)),
                ('amount', models.PositiveBigIntegerField(help_text='Units of the feature, or money in minor units (cents).')),
                ('currency', models.CharField(blank=True, help_text="Money credits: the company's currency when granted (ISO 4217).", max_length=3)),
                ('consumed', models.PositiveBigIntegerField(default=0, help_text='Spent on overage so far (same unit as amount).')),
                ('starts_at', models.DateTimeField(default=django.utils.timezone.now, help_text='Pays for overage from this moment on.')),
                ('expires_at', models.DateTimeField(help_text='Pays for no overage from this moment on.')),
                ('reason', models.CharField(help_text='Why: the ticket, goodwill gesture or contract clause.', max_length=200)),
                ('granted_by', models.CharField(blank=True, max_length=150)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('company', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='credit_grants', to='accounts.company')),
                ('feature', models.ForeignKey(blank=True, help_text='Unit credits: the feature they pay for. Empty for money.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='credit_grants', to='billing.feature')),
            ],
            options={
                'ordering': ['company', 'expires_at', 'id'],
            },
        ),
        migrations.CreateModel(
            name='CreditConsumption',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('period_start', models.DateTimeField()),
                ('period_end', models.DateTimeField()),
                ('sequence', models.PositiveIntegerField()),
                ('units', models.PositiveBigIntegerField(help_text='Overage units paid for.')),
                ('amount', models.PositiveBigIntegerField(help_text='Taken from the grant: units, or money in minor units.')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('company', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='credit_consumptions', to='accounts.company')),
                ('feature', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='credit_consumptions', to='billing.feature')),
                ('grant', models.ForeignKey(on_delete=django.db.models.deletion.RESTRICT, related_name='consumptions', to='billing.creditgrant')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.AddIndex(
            model_name='creditgrant',
            index=models.Index(fields=['company', 'expires_at'], name='creditgrant_company_expiry'),
        ),
        migrations.AddConstraint(
            model_name='creditgrant',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='creditgrant_amount_positive'),
        ),
        migrations.AddConstraint(
            model_name='creditgrant',
            constraint=models.CheckConstraint(condition=models.Q(('consumed__lte', models.F('amount'))), name='creditgrant_consumed_within_amount'),
        ),
        migrations.AddConstraint(
            model_name='creditgrant',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('feature__isnull', False), ('kind', 'units')), models.Q(('currency__regex', '^[A-Z]{3}$'), ('feature__isnull', True), ('kind', 'money')), _connector='OR'), name='creditgrant_units_have_feature_money_currency'),
        ),
        migrations.AddConstraint(
            model_name='creditgrant',
            constraint=models.CheckConstraint(condition=models.Q(('expires_at__gt', models.F('starts_at'))), name='creditgrant_expires_after_start'),
        ),
        migrations.AddIndex(
            model_name='creditconsumption',
            index=models.Index(fields=['company', 'period_start'], name='creditconsumption_period'),
        ),
        migrations.AddConstraint(
            model_name='creditconsumption',
            constraint=models.UniqueConstraint(fields=('company', 'feature', 'period_start', 'sequence', 'grant'), name='creditconsumption_unique_step_grant'),
        ),
        migrations.AddConstraint(
            model_name='creditconsumption',
            constraint=models.CheckConstraint(condition=models.Q(('amount__gt', 0), ('units__gt', 0)), name='creditconsumption_positive'),
        ),
    ]
