"""The upgrade flow behind the usage meter's upgrade prompt, through the stand-in Stripe."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.selectors import company_period
from audit.models import AuditLog
from billing.stripe.models import (
    BillingEvent,
    BillingEventKind,
    BillingEventStatus,
    CompanyStripe,
    StripeWebhookEvent,
    TierPrice,
)
from billing.stripe.webhook_processing import webhook_event_process
from ops.models import OpsTask
from tests.billing.stripe_fixtures import (
    METERED_PRICES,
    TIER_PRICES,
    WEBHOOK_SECRET,
    run_in_threads,
    with_customer,
)
from tests.fakes.stripe_server import make_event, signed_webhook

UPGRADE = "/api/v1/billing/upgrade/"
PORTAL = "/api/v1/billing/portal/"
WEBHOOK = "/api/v1/billing/stripe/webhook/"


def _as(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def _deliver_and_process(client, event: dict) -> str:
    body, header = signed_webhook(event, WEBHOOK_SECRET)
    assert (
        client.post(
            WEBHOOK, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
        ).status_code
        == 200
    )
    return webhook_event_process(webhook_event_id=StripeWebhookEvent.objects.get(stripe_id=event["id"]).pk)


@pytest.mark.django_db
def test_starter_to_pro_end_to_end(client, fake_stripe, stripe_company, set_usage):
    acme = stripe_company("starter", name="Acme Freight")
    set_usage(acme, "quotes", 1_500)  # over Starter's 1,000, well within Pro's 10,000
    api = _as(acme.owner)

    started = api.post(UPGRADE, {"tier": "pro"}, format="json")

    assert started.status_code == 200, started.json()
    assert started.json()["action"] == "checkout"
    assert started.json()["url"].startswith("https://checkout.stripe.com/")
    (session,) = fake_stripe.checkout_sessions.values()
    assert session["customer"] == CompanyStripe.objects.get(company=acme).customer_id
    assert session["mode"] == "subscription" and session["client_reference_id"] == str(acme.pk)
    # The flat monthly price once, and every metered price of Pro without a quantity, so
    # overage reported as meter events lands on Pro's invoices.
    assert fake_stripe.checkout_line_items(session["id"]) == [
        {"price": TIER_PRICES["pro"], "quantity": 1},
        {"price": METERED_PRICES[("pro", "quotes")]},
        {"price": METERED_PRICES[("pro", "bulk_jobs")]},
    ]
    # Stripe's billing cycle is anchored on our next period start, so its invoices close
    # when our usage periods do.
    (created,) = [r for r in fake_stripe.requests if r.path == "/v1/checkout/sessions"]
    period_end = company_period(acme)[1]
    assert int(created.params["subscription_data"]["billing_cycle_anchor"]) == int(period_end.timestamp())
    acme.refresh_from_db()
    assert acme.tier.code == "starter"  # nothing changes before Stripe says it is paid

    completed = fake_stripe.complete_checkout_session(session["id"])
    assert _deliver_and_process(client, make_event("checkout.session.completed", completed)) == "processed"
    subscription = fake_stripe.subscriptions[completed["subscription"]]
    assert (
        _deliver_and_process(client, make_event("customer.subscription.created", subscription)) == "processed"
    )

    acme.refresh_from_db()
    assert acme.tier.code == "pro"
    summary = api.get("/api/v1/usage/summary/").json()
    assert summary["tier"]["code"] == "pro"
    quotes = next(f for f in summary["features"] if f["feature"] == "quotes")
    assert (quotes["used"], quotes["limit"], quotes["status"], quotes["overage_units"]) == (
        1_500,
        10_000,
        "ok",
        0,
    )

    upgrade = BillingEvent.objects.get(kind=BillingEventKind.UPGRADE, company=acme)
    assert upgrade.status == BillingEventStatus.SENT and upgrade.to_tier.code == "pro"
    assert upgrade.stripe_object_id == session["id"]
    assert BillingEvent.objects.filter(kind=BillingEventKind.TIER_CHANGE, company=acme).count() == 1
    mapping = CompanyStripe.objects.get(company=acme)
    assert (mapping.subscription_id, mapping.subscription_price_id) == (
        subscription["id"],
        TIER_PRICES["pro"],
    )
    actions = set(AuditLog.objects.filter(company_id=acme.pk).values_list("action", "actor_label"))
    assert ("billing.upgrade.request", acme.owner.username) in actions
    assert ("billing.upgrade.completed", "stripe") in actions
    assert ("billing.company.tier_change", "stripe") in actions
    posts = [r for r in fake_stripe.requests if r.method == "POST"]
    assert posts and all(r.idempotency_key for r in posts)


@pytest.mark.django_db
def test_an_existing_subscription_changes_price_with_proration(fake_stripe, stripe_company):
    acme = stripe_company("starter")
    customer = with_customer(fake_stripe, acme)
    sub = fake_stripe.add_subscription(
        customer,
        [TIER_PRICES["starter"], METERED_PRICES[("starter", "quotes")], METERED_PRICES[("starter", "bulk_jobs")]],
        metadata={"company_id": str(acme.pk)},
    )
    CompanyStripe.objects.filter(company=acme).update(
        subscription_id=sub["id"],
        subscription_item_id=sub["items"]["data"][0]["id"],
        subscription_status="active",
    )
    starter_metered = [i["id"] for i in sub["items"]["data"][1:]]

    response = _as(acme.owner).post(UPGRADE, {"tier": "enterprise"}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json() | {"billing_event": 0} == {
        "action": "changed",
        "tier": "enterprise",
        "status": "active",
        "billing_event": 0,
    }
    acme.refresh_from_db()
    assert acme.tier.code == "enterprise"
    items = fake_stripe.subscriptions[sub["id"]]["items"]["data"]
    # All items swapped: the flat price with proration, Starter's metered prices out,
    # Enterprise's in, so overage from now on is invoiced at Enterprise's rates.
    assert [i["price"]["id"] for i in items] == [
        TIER_PRICES["enterprise"],
        METERED_PRICES[("enterprise", "quotes")],
        METERED_PRICES[("enterprise", "bulk_jobs")],
    ]
    assert all(i["quantity"] is None for i in items[1:])
    (update,) = [
        r for r in fake_stripe.requests if r.method == "POST" and r.path == f"/v1/subscriptions/{sub['id']}"
    ]
    assert update.params["proration_behavior"] == "always_invoice" and update.idempotency_key
    deleted = [i["id"] for i in update.params["items"] if i.get("deleted") in (True, "true")]
    assert deleted == starter_metered
    assert BillingEvent.objects.get(kind=BillingEventKind.UPGRADE).status == BillingEventStatus.SENT


@pytest.mark.django_db
def test_a_downgrade_below_this_periods_usage_is_refused(fake_stripe, stripe_company, set_usage):
    globex = stripe_company("pro")
    set_usage(globex, "quotes", 5_000)

    response = _as(globex.owner).post(UPGRADE, {"tier": "starter"}, format="json")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["fields"][0]["field"] == "tier"
    assert "Quotes: 5000 used, Starter includes 1000" in error["message"]
    globex.refresh_from_db()
    assert globex.tier.code == "pro"
    assert not BillingEvent.objects.exists() and fake_stripe.requests == []


@pytest.mark.django_db
def test_a_downgrade_that_fits_goes_to_checkout(fake_stripe, stripe_company, set_usage):
    globex = stripe_company("pro")
    set_usage(globex, "quotes", 900)

    response = _as(globex.owner).post(UPGRADE, {"tier": "starter"}, format="json")

    assert response.status_code == 200 and response.json()["action"] == "checkout"
    assert BillingEvent.objects.get().kind == BillingEventKind.DOWNGRADE


@pytest.mark.django_db
def test_bad_requests_name_the_field_and_change_nothing(fake_stripe, stripe_company):
    acme = stripe_company("starter")
    api = _as(acme.owner)

    unknown = api.post(UPGRADE, {"tier": "platinum"}, format="json")
    missing = api.post(UPGRADE, {}, format="json")
    same = api.post(UPGRADE, {"tier": "starter"}, format="json")

    assert (unknown.status_code, unknown.json()["error"]["fields"][0]["field"]) == (400, "tier")
    assert (missing.status_code, missing.json()["error"]["fields"][0]["field"]) == (400, "tier")
    assert (same.status_code, same.json()["error"]["fields"][0]["field"]) == (409, "tier")
    assert same.json()["error"] == {
        "status": 409,
        "code": "conflict",
        "message": "The company is already on Starter.",
        "fields": [{"field": "tier", "code": "conflict", "message": "The company is already on Starter."}],
    }
    assert not BillingEvent.objects.exists() and fake_stripe.requests == []


@pytest.mark.django_db
def test_a_plan_without_a_stripe_price_is_a_400_naming_the_tier(fake_stripe, stripe_company):
    acme = stripe_company("starter")
    TierPrice.objects.filter(tier__code="enterprise").delete()

    response = _as(acme.owner).post(UPGRADE, {"tier": "enterprise"}, format="json")

    message = "Enterprise cannot be bought online; contact sales."
    assert response.status_code == 400
    assert response.json()["error"] == {
        "status": 400,
        "code": "invalid",
        "message": f"tier: {message}",
        "fields": [{"field": "tier", "code": "invalid", "message": message}],
    }
    assert not BillingEvent.objects.exists() and fake_stripe.requests == []


@pytest.mark.django_db
def test_only_owners_and_admins_of_the_company_may_upgrade(fake_stripe, stripe_company, outsider, staff_user):
    acme = stripe_company("starter")
    member = stripe_company("starter", role="member")
    admin_co = stripe_company("starter", role="admin")

    assert _as(member.owner).post(UPGRADE, {"tier": "pro"}, format="json").status_code == 403
    assert _as(outsider).post(UPGRADE, {"tier": "pro"}, format="json").status_code == 404
    other = _as(admin_co.owner).post(UPGRADE, {"tier": "pro", "company": acme.slug}, format="json")
    assert other.status_code == 404
    assert APIClient().post(UPGRADE, {"tier": "pro"}, format="json").status_code in (401, 403)
    assert _as(admin_co.owner).post(UPGRADE, {"tier": "pro"}, format="json").status_code == 200
    # Staff act for any company only with the permission to change companies.
    assert _as(staff_user).post(UPGRADE, {"tier": "pro", "company": str(acme.pk)}, format="json").status_code == 404
    staff_user.user_permissions.add(Permission.objects.get(codename="change_company"))
    staff_user = type(staff_user).objects.get(pk=staff_user.pk)  # fresh permission cache
    staff = _as(staff_user).post(UPGRADE, {"tier": "pro", "company": str(acme.pk)}, format="json")
    assert staff.status_code == 200 and staff.json()["action"] == "checkout"
    assert set(BillingEvent.objects.values_list("company_id", flat=True)) == {admin_co.pk, acme.pk}


@pytest.mark.django_db
def test_the_portal_returns_a_billing_portal_url(fake_stripe, stripe_company):
    acme = stripe_company("starter")

    response = _as(acme.owner).post(PORTAL, {}, format="json")

    assert response.status_code == 200
    assert response.json()["url"].startswith("https://billing.stripe.com/p/session/")
    assert AuditLog.objects.filter(action="billing.portal.open", company_id=acme.pk).exists()


@pytest.mark.django_db
def test_stripe_down_answers_503_and_records_the_failed_attempt(fake_stripe, stripe_company):
    acme = stripe_company("starter")
    with_customer(fake_stripe, acme)
    fake_stripe.fail_next(1, 503)

    response = _as(acme.owner).post(UPGRADE, {"tier": "pro"}, format="json")

    assert response.status_code == 503
    assert response.json()["error"] == {
        "status": 503,
        "code": "unavailable",
        "message": "Stripe is not reachable right now; try again in a minute.",
        "fields": [],
    }
    assert BillingEvent.objects.get().status == BillingEventStatus.FAILED
    acme.refresh_from_db()
    assert acme.tier.code == "starter"


@pytest.mark.django_db
def test_stripe_refusing_answers_502_without_stripes_words_and_records_them(fake_stripe, stripe_company):
    acme = stripe_company("starter")
    CompanyStripe.objects.create(company=acme, customer_id="cus_deleted_at_stripe")

    response = _as(acme.owner).post(UPGRADE, {"tier": "pro"}, format="json")

    assert response.status_code == 502
    assert response.json()["error"] == {
        "status": 502,
        "code": "stripe_error",
        "message": "Stripe refused the request; the ops team has the details.",
        "fields": [],
    }
    failed = BillingEvent.objects.get()
    assert failed.status == BillingEventStatus.FAILED and "cus_deleted_at_stripe" in failed.error
    acme.refresh_from_db()
    assert acme.tier.code == "starter"


@pytest.mark.django_db
def test_the_portal_answers_503_while_stripe_is_down(fake_stripe, stripe_company):
    acme = stripe_company("starter")
    with_customer(fake_stripe, acme)
    fake_stripe.fail_next(1, 503)

    response = _as(acme.owner).post(PORTAL, {}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (503, "unavailable")
    assert not AuditLog.objects.filter(action="billing.portal.open").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("wanted", ["²", "١٢", "Ⅻ", "12²"])
def test_a_non_ascii_digit_company_is_not_found_not_a_server_error(fake_stripe, stripe_company, wanted):
    acme = stripe_company("starter")

    upgrade = _as(acme.owner).post(UPGRADE, {"tier": "pro", "company": wanted}, format="json")
    portal = _as(acme.owner).post(PORTAL, {"company": wanted}, format="json")

    assert (upgrade.status_code, portal.status_code) == (404, 404)
    assert not BillingEvent.objects.exists() and fake_stripe.requests == []


@pytest.mark.django_db
@pytest.mark.parametrize("stripe_says", ["customer.subscription.updated", "invoice.payment_failed"])
def test_a_plan_change_does_not_hide_stripes_same_second_past_due(client, fake_stripe, stripe_company, stripe_says):
    """The upgrade's proration invoice fails at once: Stripe's events of that very second
    must still make the company past due, whatever our own clock said."""
    acme = stripe_company("starter")
    customer = with_customer(fake_stripe, acme)
    sub = fake_stripe.add_subscription(
        customer, [TIER_PRICES["starter"], METERED_PRICES[("starter", "quotes")]], metadata={"company_id": str(acme.pk)}
    )
    CompanyStripe.objects.filter(company=acme).update(
        subscription_id=sub["id"], subscription_item_id=sub["items"]["data"][0]["id"], subscription_status="active"
    )
    with time_machine.travel(datetime(2026, 11, 20, 12, 0, 0, 250_000, tzinfo=UTC), tick=False):
        assert _as(acme.owner).post(UPGRADE, {"tier": "pro"}, format="json").json()["action"] == "changed"
        same_second = int(time.time())
        if stripe_says == "invoice.payment_failed":
            obj = {
                "id": "in_proration",
                "object": "invoice",
                "customer": customer,
                "amount_due": 15_000,
                "currency": "usd",
                "parent": {"subscription_details": {"subscription": sub["id"]}},
            }
        else:
            obj = fake_stripe.set_subscription_status(sub["id"], "past_due")
        event = make_event(stripe_says, obj, created=same_second)

    assert _deliver_and_process(client, event) == "processed"

    acme.refresh_from_db()
    assert (acme.tier.code, acme.status) == ("pro", "past_due")


@pytest.mark.django_db
def test_a_second_upgrade_click_gets_the_same_checkout(fake_stripe, stripe_company):
    acme = stripe_company("starter")
    api = _as(acme.owner)

    first = api.post(UPGRADE, {"tier": "pro"}, format="json").json()
    second = api.post(UPGRADE, {"tier": "pro"}, format="json").json()

    assert second["url"] == first["url"] and second["billing_event"] == first["billing_event"]
    assert len(fake_stripe.checkout_sessions) == 1
    assert BillingEvent.objects.filter(kind=BillingEventKind.UPGRADE).count() == 1
    with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
        later = api.post(UPGRADE, {"tier": "pro"}, format="json").json()
    assert later["url"] != first["url"] and len(fake_stripe.checkout_sessions) == 2


@pytest.mark.django_db(transaction=True)
def test_two_upgrade_clicks_at_once_make_one_checkout_session(fake_stripe, stripe_company):
    acme = stripe_company("starter")

    def click() -> str:
        return _as(acme.owner).post(UPGRADE, {"tier": "pro"}, format="json").json()["url"]

    urls = run_in_threads(click, [(), (), ()])

    assert len(set(urls)) == 1 and str(urls[0]).startswith("https://checkout.stripe.com/")
    assert len(fake_stripe.checkout_sessions) == 1
    assert BillingEvent.objects.filter(kind=BillingEventKind.UPGRADE).count() == 1


@pytest.mark.django_db
def test_a_second_paid_checkout_opens_an_ops_task(client, fake_stripe, stripe_company):
    acme = stripe_company("starter")
    customer = with_customer(fake_stripe, acme)
    live = fake_stripe.add_subscription(customer, TIER_PRICES["starter"], metadata={"company_id": str(acme.pk)})
    CompanyStripe.objects.filter(company=acme).update(subscription_id=live["id"], subscription_status="active")
    # A checkout started elsewhere (another tab, before the first subscription existed).
    session = fake_stripe.client().v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer,
            "line_items": [{"price": TIER_PRICES["pro"], "quantity": 1}],
            "client_reference_id": str(acme.pk),
            "success_url": "https://x.test/s",
            "metadata": {"company_id": str(acme.pk)},
        }
    )

    completed = fake_stripe.complete_checkout_session(session.id)
    assert _deliver_and_process(client, make_event("checkout.session.completed", completed)) == "processed"

    task = OpsTask.objects.get(kind="billing.duplicate_subscription")
    assert task.company == acme and live["id"] in task.details and completed["subscription"] in task.details
