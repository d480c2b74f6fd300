"""Ops grant credits in admin: every grant, change and early expiry is audited; a grant that
paid for overage keeps its terms and only expires earlier; grants are never deleted."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditLog
from billing.plans.models import CreditGrant, CreditKind, Feature

URL = "/admin/billing/creditgrant/"


def _form(company, **extra):
    expires = timezone.now() + timedelta(days=30)
    starts = timezone.now() - timedelta(minutes=1)
    form = {
        "company": company.pk,
        "reason": "Ticket T-42: outage on 3 Dec",
        "kind": "money",
        "feature": "",
        "amount": "2500",
        "starts_at_0": f"{starts:%Y-%m-%d}",
        "starts_at_1": f"{starts:%H:%M:%S}",
        "expires_at_0": f"{expires:%Y-%m-%d}",
        "expires_at_1": f"{expires:%H:%M:%S}",
        "consumptions-TOTAL_FORMS": "0",
        "consumptions-INITIAL_FORMS": "0",
    }
    form.update(extra)
    return form


@pytest.mark.django_db
def test_a_grant_made_in_admin_is_audited_in_the_company_currency(stripe_company, admin_client, admin_user):
    acme = stripe_company("starter")

    r = admin_client.post(f"{URL}add/", _form(acme))

    assert r.status_code == 302, r.content.decode()[:3000]
    grant = CreditGrant.objects.get()
    assert (grant.company, grant.kind, grant.amount, grant.currency) == (acme, CreditKind.MONEY, 2_500, "USD")
    assert grant.granted_by == admin_user.get_username()
    record = AuditLog.objects.get(action="billing.credit.grant")
    assert record.company_id == acme.pk and record.actor_label == admin_user.get_username()
    assert (record.details["amount"], record.details["reason"]) == (2_500, "Ticket T-42: outage on 3 Dec")
    listing = admin_client.get(URL).content.decode()
    assert "25.00 USD" in listing and ">active</span>" in listing


@pytest.mark.django_db
def test_a_unit_grant_needs_its_feature_and_a_reason(stripe_company, admin_client):
    acme = stripe_company("starter")

    no_feature = admin_client.post(f"{URL}add/", _form(acme, kind="units", amount="300"))
    no_reason = admin_client.post(f"{URL}add/", _form(acme, reason=""))

    assert no_feature.status_code == 200 and "Unit credits name the feature" in no_feature.content.decode()
    assert no_reason.status_code == 200 and "This field is required" in no_reason.content.decode()
    assert not CreditGrant.objects.exists() and not AuditLog.objects.filter(action__startswith="billing.credit")

    quotes = Feature.objects.get(code="quotes")
    ok = admin_client.post(f"{URL}add/", _form(acme, kind="units", amount="300", feature=quotes.pk))
    assert ok.status_code == 302
    assert CreditGrant.objects.get().what(300) == "300 Quotes"


@pytest.mark.django_db
def test_an_unused_grant_can_be_changed_and_the_change_is_audited(stripe_company, admin_client):
    acme = stripe_company("starter")
    form = _form(acme)
    admin_client.post(f"{URL}add/", form)
    grant = CreditGrant.objects.get()

    r = admin_client.post(f"{URL}{grant.pk}/change/", {**form, "amount": "4000"})

    assert r.status_code == 302, r.content.decode()[:3000]
    grant.refresh_from_db()
    assert grant.amount == 4_000
    record = AuditLog.objects.get(action="billing.credit.change")
    assert record.details["changes"] == {"amount": {"before": 2_500, "after": 4_000}}


@pytest.mark.django_db
def test_a_used_grant_only_expires_earlier(stripe_company, admin_client):
    acme = stripe_company("starter")
    admin_client.post(f"{URL}add/", _form(acme))
    grant = CreditGrant.objects.get()
    CreditGrant.objects.filter(pk=grant.pk).update(consumed=500)  # it paid for some overage
    page = admin_client.get(f"{URL}{grant.pk}/change/").content.decode()
    assert 'name="amount"' not in page and 'name="expires_at_0"' in page  # terms are read-only

    later = grant.expires_at + timedelta(days=10)
    refused = admin_client.post(
        f"{URL}{grant.pk}/change/",
        _form(acme, amount="9999", expires_at_0=f"{later:%Y-%m-%d}", expires_at_1=f"{later:%H:%M:%S}"),
    )
    assert refused.status_code == 200 and "it can only expire earlier" in refused.content.decode()

    sooner = timezone.now() + timedelta(days=1)
    r = admin_client.post(
        f"{URL}{grant.pk}/change/",
        _form(acme, amount="9999", expires_at_0=f"{sooner:%Y-%m-%d}", expires_at_1=f"{sooner:%H:%M:%S}"),
    )
    assert r.status_code == 302, r.content.decode()[:3000]
    grant.refresh_from_db()
    assert grant.amount == 2_500 and grant.consumed == 500  # the posted amount was ignored
    assert abs(grant.expires_at - sooner) < timedelta(seconds=1)
    record = AuditLog.objects.get(action="billing.credit.expire")
    assert record.details["left"] == 2_000
    assert not AuditLog.objects.filter(action="billing.credit.change").exists()


@pytest.mark.django_db
def test_expire_now_ends_grants_and_nothing_deletes_them(stripe_company, admin_client):
    acme = stripe_company("starter")
    admin_client.post(f"{URL}add/", _form(acme))
    grant = CreditGrant.objects.get()

    r = admin_client.post(URL, {"action": "expire_now", "_selected_action": [grant.pk]}, follow=True)

    assert "1 grant(s) expired now." in r.content.decode()
    grant.refresh_from_db()
    assert grant.expires_at <= timezone.now()
    assert AuditLog.objects.filter(action="billing.credit.expire", target_id=str(grant.pk)).count() == 1
    assert admin_client.get(f"{URL}{grant.pk}/delete/").status_code == 403
    assert ">expired</span>" in admin_client.get(URL).content.decode()
