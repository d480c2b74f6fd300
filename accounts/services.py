"""Writes to companies, memberships and API keys (Stripe lives elsewhere)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from django.db import transaction

from accounts.models import Company, CompanyAPIKey
from audit.services import Actor, Target, audit_record
from billing.plans.models import Tier
from core import hotcache


def key_target(key: CompanyAPIKey) -> Target:
    """The key's primary key embeds its hash and is too long for the audit trail: name it
    by its public prefix."""
    return Target(type="billing.companyapikey", id=key.prefix, repr=f"{key.name} ({key.prefix})")


def company_api_key_create(
    *, company: Company, name: str, actor: Actor, expiry_date: datetime | None = None
) -> tuple[CompanyAPIKey, str]:
    """Create a key and return it with its secret, which is shown once and never stored."""
    with transaction.atomic():
        created, secret = CompanyAPIKey.objects.create_key(company=company, name=name, expiry_date=expiry_date)
        key = cast(CompanyAPIKey, created)  # the library types create_key with its abstract base
        audit_record(
            action="billing.api_key.create",
            actor=actor,
            target=key_target(key),
            company=company,
            details={"name": name, "prefix": key.prefix},
        )
    return key, secret


def company_api_key_revoke(*, key: CompanyAPIKey, actor: Actor) -> bool:
    """Revoke for good. Returns False when it was already revoked (another admin got there first)."""
    with transaction.atomic():
        changed = CompanyAPIKey.objects.filter(pk=key.pk, revoked=False).update(revoked=True)
        if changed:
            hotcache.invalidate(CompanyAPIKey)  # every process stops taking the key within a second
            audit_record(
                action="billing.api_key.revoke",
                actor=actor,
                target=key_target(key),
                company=key.company,
                details={"name": key.name, "prefix": key.prefix},
            )
    return bool(changed)


def company_set_tier(*, company: Company, tier: Tier, actor: Actor, reason: str = "") -> bool:
    """Move a company to another tier (admin, or the billing flow). Audited."""
    with transaction.atomic():
        # FOR NO KEY UPDATE of the company row only: it does not conflict with the key-share
        # locks that inserts referencing the company (or its tier) take, so it cannot
        # deadlock with audited writers holding the audit chain head.
        locked = Company.objects.select_for_update(no_key=True, of=("self",))
        before = locked.values_list("tier__code", flat=True).get(pk=company.pk)
        if before == tier.code:
            return False
        Company.objects.filter(pk=company.pk).update(tier=tier)
        hotcache.invalidate(Company)  # ingestion applies the new tier's limits within a second
        company.tier = tier
        audit_record(
            action="billing.company.tier_change",
            actor=actor,
            target=company,
            company=company,
            details={"from": before, "to": tier.code, "reason": reason},
        )
    return True
