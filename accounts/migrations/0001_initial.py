"""Company, Membership and CompanyAPIKey, moved here from billing with their tables
(``billing_company`` ...) untouched. Their content types move with them, so
permissions granted on them (and admin history) carry over."""

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import accounts.models

MOVED = ("company", "membership", "companyapikey")


def _relabel(apps, old: str, new: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not ContentType.objects.filter(app_label=new, model=model).exists():
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)


def move_content_types(apps, schema_editor):
    _relabel(apps, "billing", "accounts")


def move_content_types_back(apps, schema_editor):
    _relabel(apps, "accounts", "billing")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('billing', '0010_invoice_outcome_register'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [
        # The tables stay where they are: only Django's picture of them changes.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Company',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=200)),
                        ('slug', models.SlugField(max_length=100, unique=True)),
                        ('status', models.CharField(choices=[('trialing', 'Trialing'), ('active', 'Active'), ('past_due', 'Past due'), ('canceled', 'Canceled')], default='active', max_length=20)),
                        ('billing_anchor_day', models.PositiveSmallIntegerField(default=1, help_text="Day of the month each monthly period starts (00:00 UTC). In shorter months a period starts on the month's last day instead.", validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(31)])),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('tier', models.ForeignKey(default=accounts.models.default_tier_id, on_delete=django.db.models.deletion.PROTECT, related_name='companies', to='billing.tier')),
                    ],
                    options={
                        'verbose_name_plural': 'companies',
                        'db_table': 'billing_company',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='CompanyAPIKey',
                    fields=[
                        ('id', models.CharField(editable=False, max_length=150, primary_key=True, serialize=False, unique=True)),
                        ('prefix', models.CharField(editable=False, max_length=8, unique=True)),
                        ('hashed_key', models.CharField(editable=False, max_length=150)),
                        ('created', models.DateTimeField(auto_now_add=True, db_index=True)),
                        ('name', models.CharField(default=None, help_text='A free-form name for the API key. Need not be unique. 50 characters max.', max_length=50)),
                        ('revoked', models.BooleanField(blank=True, default=False, help_text='If the API key is revoked, clients cannot use it anymore. (This cannot be undone.)')),
                        ('expiry_date', models.DateTimeField(blank=True, help_text='Once API key expires, clients cannot use it anymore.', null=True, verbose_name='Expires')),
                        ('last_used_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('company', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_keys', to='accounts.company')),
                    ],
                    options={
                        'verbose_name': 'company API key',
                        'verbose_name_plural': 'company API keys',
                        'db_table': 'billing_companyapikey',
                        'ordering': ('-created',),
                        'abstract': False,
                    },
                ),
                migrations.CreateModel(
                    name='Membership',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('role', models.CharField(choices=[('owner', 'Owner'), ('admin', 'Admin'), ('member', 'Member')], default='member', max_length=20)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('company', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='accounts.company')),
                        ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'billing_membership',
                        'ordering': ['company', 'user'],
                    },
                ),
                migrations.AddField(
                    model_name='company',
                    name='users',
                    field=models.ManyToManyField(blank=True, related_name='companies', through='accounts.Membership', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AddConstraint(
                    model_name='membership',
                    constraint=models.UniqueConstraint(fields=('user', 'company'), name='membership_unique_user_company'),
                ),
                migrations.AddConstraint(
                    model_name='company',
                    constraint=models.CheckConstraint(condition=models.Q(('billing_anchor_day__gte', 1), ('billing_anchor_day__lte', 31)), name='company_anchor_day_1_31'),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back, elidable=False),
    ]
