"""Install the default plan catalogue: Starter, Pro and Enterprise with limits for quotes,
bulk jobs and directory invites. Ops edit it in admin afterwards; running this again never
overwrites their edits."""

from django.db import migrations


def install(apps, schema_editor):
    from billing.plans.catalogue import install_default_catalogue

    install_default_catalogue(
        Tier=apps.get_model("billing", "Tier"),
        Feature=apps.get_model("billing", "Feature"),
        TierLimit=apps.get_model("billing", "TierLimit"),
    )


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0002_plans_memberships_api_keys"),
    ]

    operations = [
        migrations.RunPython(install, migrations.RunPython.noop),
    ]
