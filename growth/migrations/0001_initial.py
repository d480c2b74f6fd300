
import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0001_initial'),
        ('billing', '0012_webhook_retry_schedule'),
    ]

    operations = [
        migrations.CreateModel(
            name='Experiment',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.SlugField(help_text='Hashed with the company id to assign a variant.', max_length=60, unique=True)),
                ('name', models.CharField(max_length=200)),
                ('placement', models.CharField(choices=[('usage_banner', 'Usage page banner'), ('plan_table', 'Plan table'), ('warning_email', 'Warning e-mail'), ('api_prompt', 'API upgrade.prompt')], max_length=20)),
                ('status', models.CharField(choices=[('draft', 'Draft'), ('running', 'Running'), ('stopped', 'Stopped'), ('shipped', 'Shipped')], default='draft', max_length=10)),
                ('starts_at', models.DateTimeField(blank=True, help_text='Set when the experiment starts.', null=True)),
                ('stops_at', models.DateTimeField(blank=True, help_text='Set when it stops or ships.', null=True)),
                ('conversion_window_days', models.PositiveSmallIntegerField(default=14, help_text='An upgrade counts if it completes within this many days of the first exposure.', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(365)])),
                ('holdout_share', models.DecimalField(decimal_places=3, default=0, help_text='Share of companies (0 to 0.9) who see no prompt at all.', max_digits=4, validators=[django.core.validators.MinValueValidator(0), django.core.validators.MaxValueValidator(0.9)])),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='Variant',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.SlugField(help_text='A, B, control, short-headline ...', max_length=30)),
                ('weight', models.PositiveIntegerField(default=1, validators=[django.core.validators.MinValueValidator(1)])),
                ('is_control', models.BooleanField(default=False)),
                ('headline', models.CharField(max_length=200)),
                ('call_to_action', models.CharField(max_length=100)),
                ('threshold_percent', models.PositiveSmallIntegerField(default=80, help_text="The prompt appears once a feature's usage reaches this share of its limit.", validators=[django.core.validators.MaxValueValidator(1000)])),
                ('experiment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='variants', to='growth.experiment')),
                ('highlighted_tier', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.tier')),
            ],
            options={
                'ordering': ['experiment', 'key'],
            },
        ),
        migrations.CreateModel(
            name='Exposure',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('day', models.DateField()),
                ('shown_at', models.DateTimeField()),
                ('source', models.CharField(choices=[('page', 'Account page'), ('api', 'Frontend (API)'), ('email', 'E-mail')], max_length=10)),
                ('company', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.company')),
                ('experiment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='exposures', to='growth.experiment')),
                ('variant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='exposures', to='growth.variant')),
            ],
        ),
        migrations.AddField(
            model_name='experiment',
            name='winner',
            field=models.ForeignKey(blank=True, help_text="The shipped variant: the placement's default prompt.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='growth.variant'),
        ),
        migrations.CreateModel(
            name='Conversion',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('first_exposed_at', models.DateTimeField()),
                ('converted_at', models.DateTimeField()),
                ('revenue_uplift', models.BigIntegerField(help_text='Monthly price difference in minor units.')),
                ('currency', models.CharField(default='USD', max_length=3)),
                ('company', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.company')),
                ('from_tier', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.tier')),
                ('to_tier', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='billing.tier')),
                ('experiment', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='conversions', to='growth.experiment')),
                ('variant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='conversions', to='growth.variant')),
            ],
        ),
        migrations.AddConstraint(
            model_name='variant',
            constraint=models.UniqueConstraint(fields=('experiment', 'key'), name='growth_variant_key_unique'),
        ),
        migrations.AddConstraint(
            model_name='variant',
            constraint=models.UniqueConstraint(condition=models.Q(('is_control', True)), fields=('experiment',), name='growth_one_control'),
        ),
        migrations.AddIndex(
            model_name='exposure',
            index=models.Index(fields=['company', 'shown_at'], name='growth_expo_company_2ac5f6_idx'),
        ),
        migrations.AddConstraint(
            model_name='exposure',
            constraint=models.UniqueConstraint(fields=('experiment', 'company', 'day'), name='growth_exposure_once_a_day'),
        ),
        migrations.AddConstraint(
            model_name='experiment',
            constraint=models.UniqueConstraint(condition=models.Q(('status', 'running')), fields=('placement',), name='growth_one_running_per_placement'),
        ),
        migrations.AddConstraint(
            model_name='conversion',
            constraint=models.UniqueConstraint(fields=('experiment', 'company'), name='growth_conversion_once'),
        ),
    ]
