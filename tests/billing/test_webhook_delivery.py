"""Stripe delivers events more than once and in any order; the outcome must not depend on it."""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest

from accounts.models import Company
from billing.stripe.models import BillingEvent, BillingEventKind, CompanyStripe, StripeWebhookEvent, WebhookEventStatus
from billing.stripe.webhook_processing import webhook_event_process
from ops.models import Notification, OpsTask
from tests.billing.stripe_fixtures import TIER_PRICES, WEBHOOK_SECRET, run_in_threads
from tests.fakes.stripe_server import make_event, signed_webhook

URL = "/api/v1/billing/stripe/webhook/"
COMPANIES = 10
EVENTS_PER_COMPANY = 20


def _subscription(company: Company, customer: str, sub_id: str, tier: str, status: str, created: int) -> dict:
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "created": created,
        "metadata": {"company_id": str(company.pk)},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{sub_id}",
                    "object": "subscription_item",
                    "price": {"id": TIER_PRICES[tier], "object": "price"},
                    "quantity": 1,
                }
            ],
        },
    }


def _invoice(customer: str, invoice_id: str, paid: bool) -> dict:
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": customer,
        "amount_due": 19_900,
        "amount_paid": 19_900 if paid else 0,
        "currency": "usd",
        "status": "paid" if paid else "open",
        "attempt_count": 1,
        "next_payment_attempt": None if paid else 1_800_000_000,
    }


def _story(company: Company, customer: str, seed: int, base: int) -> list[dict]:
    """One company's life at Stripe: a subscription changing tier and status, invoices
    paid or failing (some failing twice), an event type we do not handle, maybe a
    cancellation. Distinct ``created`` seconds, as Stripe's own ordering key."""
    rng = random.Random(seed)
    sub_id = f"sub_{company.slug}"
    events = [
        make_event(
            "customer.subscription.created",
            _subscription(company, customer, sub_id, "starter", "active", base),
            created=base,
        )
    ]
    for k in range(1, EVENTS_PER_COMPANY):
        created = base + 7 * k
        roll = rng.random()
        if k == EVENTS_PER_COMPANY - 1 and seed % 3 == 0:
            obj = _subscription(company, customer, sub_id, rng.choice(["starter", "pro"]), "canceled", base)
            events.append(make_event("customer.subscription.deleted", obj, created=created))
        elif roll < 0.4:
            tier = rng.choice(["starter", "pro", "enterprise"])
            status = rng.choice(["active", "active", "past_due", "trialing"])
            obj = _subscription(company, customer, sub_id, tier, status, base)
            events.append(make_event("customer.subscription.updated", obj, created=created))
        elif roll < 0.6:
            events.append(
                make_event(
                    "invoice.paid", _invoice(customer, f"in_{company.slug}_{k}", True), created=created
                )
            )
        elif roll < 0.85:
            invoice = f"in_{company.slug}_{k - k % 2}"  # some invoices fail twice
            events.append(
                make_event("invoice.payment_failed", _invoice(customer, invoice, False), created=created)
            )
        else:
            events.append(
                make_event("customer.updated", {"id": customer, "object": "customer"}, created=created)
            )
    return events


def _companies(make, fake, prefix: str) -> list[tuple[Company, str]]:
    out = []
    for i in range(COMPANIES):
        company = make("starter", name=f"{prefix} {i}")
        customer = f"cus_{prefix}_{i}"
        CompanyStripe.objects.create(company=company, customer_id=customer)
        out.append((company, customer))
    return out


def _state(company: Company) -> tuple:
    company.refresh_from_db()
    mapping = CompanyStripe.objects.get(company=company)
    return (
        company.tier.code,
        company.status,
        mapping.subscription_status,
        mapping.subscription_price_id,
        OpsTask.objects.filter(company=company, kind="billing.payment_failed").count(),
        Notification.objects.filter(company=company, kind="billing.payment_failed").count(),
    )


def _post_all(base_url: str, deliveries: list[dict], threads: int = 8) -> list[int]:
    """Each delivery signed as Stripe would (fresh signature timestamp), posted from
    ``threads`` concurrent clients."""
    statuses: list[int] = []
    lock = threading.Lock()
    queue = list(deliveries)

    def worker() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    event = queue.pop()
                body, header = signed_webhook(event, WEBHOOK_SECRET)
                response = http.post(
                    URL,
                    content=body,
                    headers={"Stripe-Signature": header, "Content-Type": "application/json"},
                )
                with lock:
                    statuses.append(response.status_code)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return statuses


@pytest.mark.django_db(transaction=True)
def test_200_events_delivered_3_times_concurrently_in_any_order_end_like_one_ordered_delivery(
    live_server, fake_stripe, stripe_company
):
    base = int(time.time()) - 10_000
    reference = _companies(stripe_company, fake_stripe, "inorder")
    shuffled = _companies(stripe_company, fake_stripe, "shuffled")
    stories_ref = [_story(c, cus, seed=i, base=base) for i, (c, cus) in enumerate(reference)]
    stories = [_story(c, cus, seed=i, base=base) for i, (c, cus) in enumerate(shuffled)]

    # Reference: every event once, in Stripe's order, processed as it arrives.
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        for event in sorted((e for s in stories_ref for e in s), key=lambda e: e["created"]):
            body, header = signed_webhook(event, WEBHOOK_SECRET)
            assert http.post(URL, content=body, headers={"Stripe-Signature": header}).status_code == 200
            stored = StripeWebhookEvent.objects.get(stripe_id=event["id"])
            webhook_event_process(webhook_event_id=stored.pk)

    # The real thing: 200 events, each 3 times, shuffled, 8 concurrent senders ...
    events = [e for s in stories for e in s]
    assert len(events) == 200
    deliveries = events * 3
    random.Random(42).shuffle(deliveries)
    statuses = _post_all(live_server.url, deliveries)
    assert statuses == [200] * 600

    ids = [e["id"] for e in events]
    stored = StripeWebhookEvent.objects.filter(stripe_id__in=ids)
    assert stored.count() == 200
    assert sorted(stored.values_list("deliveries", flat=True)) == [3] * 200

    # ... then processed by 6 workers, each event handed out 3 times in shuffled order.
    jobs = list(stored.values_list("pk", flat=True)) * 3
    random.Random(7).shuffle(jobs)
    chunks = [jobs[i::6] for i in range(6)]
    results = run_in_threads(
        lambda chunk: [webhook_event_process(webhook_event_id=pk) for pk in chunk], [(c,) for c in chunks]
    )
    assert not [r for r in results if isinstance(r, BaseException)], results

    assert set(stored.values_list("status", flat=True)) <= {
        WebhookEventStatus.PROCESSED,
        WebhookEventStatus.IGNORED,
    }
    assert (
        stored.filter(type="customer.updated", status=WebhookEventStatus.IGNORED).count()
        == stored.filter(type="customer.updated").count()
    )
    for (ref, _), (company, _) in zip(reference, shuffled, strict=True):
        assert _state(company) == _state(ref), company
    # Effects were applied once each: one recorded effect per event and kind at most.
    effects = BillingEvent.objects.filter(company__in=[c for c, _ in shuffled]).exclude(stripe_event_id="")
    assert effects.count() == len(set(effects.values_list("stripe_event_id", "kind")))
    # A real mix was exercised: tier changes, status changes, failed payments.
    kinds = set(effects.values_list("kind", flat=True))
    assert {
        BillingEventKind.TIER_CHANGE,
        BillingEventKind.SUBSCRIPTION,
        BillingEventKind.INVOICE_PAID,
    } <= kinds
    failed = [e for e in events if e["type"] == "invoice.payment_failed"]
    assert failed and BillingEvent.objects.filter(
        kind=BillingEventKind.PAYMENT_FAILED, stripe_event_id__in=[e["id"] for e in failed]
    ).count() == len(failed)
