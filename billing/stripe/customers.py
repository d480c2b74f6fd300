"""Stripe customers: one per company, created on demand, never twice.
"""

from __future__ import annotations

from django.db import transaction

from accounts.models import Company
from accounts.selectors import company_owner_emails
from audit.services import Actor, audit_record
from billing.stripe.gateway import StripeClient, stripe_client
from billing.stripe.models import CompanyStripe

REPORTER = Actor.system("billing-overage")


def company_stripe_mapping(*, company: Company) -> CompanyStripe:
    mapping, _ = CompanyStripe.objects.get_or_create(company=company)
    return mapping


def stripe_customer_ensure(*, company: Company, client: StripeClient | None = None) -> str:
    """The company's Stripe customer id, creating the customer on first need. The
    idempotency key is per company, so two workers racing here create one customer."""
    mapping = company_stripe_mapping(company=company)
    if mapping.customer_id:
        return mapping.customer_id
    owners = company_owner_emails(company)
    customer = (client or stripe_client()).customer_create(
        name=company.name,
        email=owners[0] if owners else None,
        metadata={"company_id": str(company.pk), "company_slug": company.slug},
        idempotency_key=f"tb-customer-{company.pk}",
    )
    with transaction.atomic():
        if CompanyStripe.objects.filter(pk=mapping.pk, customer_id__isnull=True).update(
            customer_id=customer["id"]
        ):
            audit_record(
                action="billing.stripe.customer_create",
                actor=REPORTER,
                target=company,
                company=company,
                details={"customer_id": customer["id"]},
            )
    mapping.refresh_from_db()
    assert mapping.customer_id, "set just now, by this call or by the one that raced it"
    return mapping.customer_id
