"""Demo companies, one or more on each tier, with an owner each (idempotent)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.models import Company, Membership
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit

# The customer login `make demo` prints: Near Limit Carriers' owner, at 87 % of its quotes.
CUSTOMER_LOGIN = ("nina", "nina-demo", "Near Limit Carriers")

# slug, name, tier, owner username (password: <username>-demo)
DEMO_COMPANIES = [
    ("acme-freight", "Acme Freight", "starter", "alice"),
    ("near-limit-carriers", "Near Limit Carriers", "starter", "nina"),
    ("over-the-road", "Over The Road Inc", "pro", "oliver"),
    ("globex-logistics", "Globex Logistics", "enterprise", "grace"),
]


def load(*, stdout) -> None:
    User = get_user_model()
    with transaction.atomic():
        install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
        tiers = {t.code: t for t in Tier.objects.all()}
        for slug, name, tier, username in DEMO_COMPANIES:
            company, _ = Company.objects.get_or_create(slug=slug, defaults={"name": name, "tier": tiers[tier]})
            user, created = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@{slug}.example"}
            )
            if created:
                user.set_password(f"{username}-demo")
                user.save()
            Membership.objects.get_or_create(user=user, company=company, defaults={"role": "owner"})
    stdout.write(
        "Demo companies: "
        + ", ".join(f"{name} ({tier}, owner {u} / {u}-demo)" for _, name, tier, u in DEMO_COMPANIES)
    )
