"""Plan changes take the company's lock, as checkout does: of 8 simultaneous clicks on a
company with a live subscription, one changes the price at Stripe and the others get 409,
with no failed billing event left behind."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.stripe.models import BillingEvent, BillingEventKind, BillingEventStatus, CompanyStripe
from tests.billing.stripe_fixtures import METERED_PRICES, TIER_PRICES, run_in_threads, with_customer

UPGRADE = "/api/v1/billing/upgrade/"


def _live_subscription(fake_stripe, company) -> str:
    customer = with_customer(fake_stripe, company)
    sub = fake_stripe.add_subscription(
        customer,
        [TIER_PRICES["starter"], METERED_PRICES[("starter", "quotes")]],
        metadata={"company_id": str(company.pk)},
    )
    CompanyStripe.objects.filter(company=company).update(
        subscription_id=sub["id"], subscription_item_id=sub["items"]["data"][0]["id"], subscription_status="active"
    )
    return sub["id"]


def _click(user, tier: str) -> tuple[int, dict]:
    api = APIClient()
    api.force_authenticate(user)
    response = api.post(UPGRADE, {"tier": tier}, format="json")
    return response.status_code, response.json()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("tiers", [["pro"] * 8, ["pro", "enterprise"] * 4], ids=["same plan", "two plans"])
def test_eight_plan_change_clicks_at_once_make_one_stripe_change_and_seven_409s(fake_stripe, stripe_company, tiers):
    acme = stripe_company("starter")
    sub_id = _live_subscription(fake_stripe, acme)

    answers = run_in_threads(_click, [(acme.owner, tier) for tier in tiers])

    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] + [409] * 7, answers
    refusals = [body["error"] for status, body in answers if status == 409]
    assert all(e["fields"][0]["field"] == "tier" for e in refusals)
    updates = [r for r in fake_stripe.requests if r.method == "POST" and r.path == f"/v1/subscriptions/{sub_id}"]
    assert len(updates) == 1
    changes = BillingEvent.objects.filter(kind__in=[BillingEventKind.UPGRADE, BillingEventKind.DOWNGRADE])
    assert [e.status for e in changes] == [BillingEventStatus.SENT]
    acme.refresh_from_db()
    (won,) = [body for status, body in answers if status == 200]
    assert acme.tier.code == won["tier"] == fake_stripe_tier(fake_stripe, sub_id)


def fake_stripe_tier(fake_stripe, sub_id: str) -> str:
    price = fake_stripe.subscriptions[sub_id]["items"]["data"][0]["price"]["id"]
    return {v: k for k, v in TIER_PRICES.items()}[price]


@pytest.mark.django_db
def test_a_change_whose_process_died_blocks_for_ten_minutes_then_is_marked_abandoned(fake_stripe, stripe_company):
    acme = stripe_company("starter")
    _live_subscription(fake_stripe, acme)
    stuck = BillingEvent.objects.create(
        kind=BillingEventKind.UPGRADE,
        status=BillingEventStatus.PENDING,
        company=acme,
        details={"via": "subscription_update"},
        created_at=timezone.now() - timedelta(minutes=3),
    )

    blocked = _click(acme.owner, "pro")
    BillingEvent.objects.filter(pk=stuck.pk).update(created_at=timezone.now() - timedelta(minutes=11))
    allowed = _click(acme.owner, "pro")

    assert blocked[0] == 409 and "already in progress" in blocked[1]["error"]["message"]
    assert allowed[0] == 200
    stuck.refresh_from_db()
    assert stuck.status == BillingEventStatus.FAILED and stuck.error.startswith("Abandoned")
