"""Companies in admin: writes with a rule go through the services."""

from __future__ import annotations

import pytest

from accounts.models import Company
from audit.models import AuditLog
from billing.plans.models import Tier

pytestmark = pytest.mark.django_db


def _form(company: Company, **changes) -> dict:
    data = {
        "name": company.name, "slug": company.slug, "tier": company.tier_id,
        "billing_anchor_day": company.billing_anchor_day,
        "memberships-TOTAL_FORMS": 0, "memberships-INITIAL_FORMS": 0,
        "api_keys-TOTAL_FORMS": 0, "api_keys-INITIAL_FORMS": 0,
    }
    data.update(changes)
    return data


def test_a_tier_change_in_admin_is_the_audited_tier_change_service(ops_client, ops_user):
    company = Company.objects.create(name="Acme Freight", slug="acme", tier=Tier.objects.get(code="starter"))
    pro = Tier.objects.get(code="pro")
    r = ops_client.post(f"/admin/accounts/company/{company.pk}/change/", _form(company, tier=pro.pk))
    assert r.status_code == 302, r.content.decode()[:2000]
    company.refresh_from_db()
    assert company.tier == pro
    log = AuditLog.objects.get(action="billing.company.tier_change")
    assert (log.actor_label, log.company_id) == (ops_user.username, company.pk)
    assert log.details["from"] == "starter" and log.details["to"] == "pro"


def test_the_status_cannot_be_edited_by_hand(ops_client):
    company = Company.objects.create(name="Acme Freight", slug="acme")
    page = ops_client.get(f"/admin/accounts/company/{company.pk}/change/").content.decode()
    assert 'name="status"' not in page
    r = ops_client.post(f"/admin/accounts/company/{company.pk}/change/", _form(company, status="canceled"))
    assert r.status_code == 302
    company.refresh_from_db()
    assert company.status == "active"


def test_old_billing_admin_urls_of_companies_redirect_to_accounts(ops_client):
    company = Company.objects.create(name="Acme Freight", slug="acme")
    r = ops_client.get(f"/admin/billing/company/{company.pk}/change/?x=1")
    assert r.status_code == 301
    assert r["Location"] == f"/admin/accounts/company/{company.pk}/change/?x=1"
    assert ops_client.get(r["Location"]).status_code == 200
