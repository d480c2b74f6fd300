"""Reads about companies and their people."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from accounts.models import Company, Membership, MembershipRole
from billing.plans.periods import period_bounds


def company_period(company: Company, at: datetime | None = None) -> tuple[datetime, datetime]:
    """The company's billing period [start, end) containing ``at`` (default now), UTC."""
    return period_bounds(company.billing_anchor_day, at or timezone.now())


def company_owner_emails(company: Company) -> list[str]:
    """Addresses of the company's active owners: who gets usage warnings and billing alerts."""
    emails = (
        Membership.objects.filter(company=company, role=MembershipRole.OWNER, user__is_active=True)
        .exclude(user__email="")
        .order_by("user__email")
        .values_list("user__email", flat=True)
    )
    return list(dict.fromkeys(emails))
