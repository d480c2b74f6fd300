"""A Stripe event fails once and its retry message is lost (the worker dies holding it and
the broker restarts empty): the webhook sweep finds it by its row and it is processed,
once."""

from __future__ import annotations

import signal

from tests.chaos.stack import WEBHOOK_SECRET, Stack, eventually
from tests.fakes.stripe_server import make_event, signed_webhook

WEBHOOK = "/api/v1/billing/stripe/webhook/"


def _event_row(stack: Stack, stripe_id: str) -> tuple | None:
    rows = stack.sql(
        "SELECT status, attempts, next_attempt_at FROM billing_stripewebhookevent WHERE stripe_id = %s", [stripe_id]
    )
    return rows[0] if rows else None


def test_a_failed_event_whose_retry_was_lost_is_processed_by_the_sweep(stack: Stack, fakes):
    stripe_fake = fakes["stripe"]
    acme_id = stack.value("SELECT id FROM billing_company WHERE slug = 'acme'")
    customer = stripe_fake.add_customer(email="acme@chaos.test", metadata={"company_id": str(acme_id)})
    sub = stripe_fake.add_subscription(customer["id"], "price_pro_month", metadata={"company_id": str(acme_id)})
    event = make_event(
        "checkout.session.completed",
        {
            "id": "cs_chaos_lost_retry",
            "object": "checkout.session",
            "mode": "subscription",
            "payment_status": "paid",
            "customer": customer["id"],
            "subscription": sub["id"],
            "metadata": {"company_id": str(acme_id)},
        },
    )
    body, header = signed_webhook(event, WEBHOOK_SECRET)
    stripe_fake.fail_next(1, 503)  # the first try cannot fetch the subscription

    with stack.http() as http:
        headers = {"Stripe-Signature": header, "Content-Type": "application/json"}
        assert http.post(WEBHOOK, content=body, headers=headers).status_code == 200

    def status() -> str:
        return (_event_row(stack, event["id"]) or ("",))[0]

    eventually(lambda: status() == "failed", timeout=30, what="the first try failing")
    # Its retry (a countdown message) is lost: the worker dies holding it, the broker restarts empty.
    stack.processes["beat"].stop(signal.SIGKILL)
    stack.processes["worker"].stop(signal.SIGKILL)
    with stack.broker_down():
        pass
    stack.purge()  # RabbitMQ kept it over the restart: lose it all the same
    stack.restart("worker")
    stack.restart("beat")

    eventually(lambda: status() == "processed", timeout=60, what="the sweep processing it")
    _, attempts, next_attempt_at = _event_row(stack, event["id"])
    assert (attempts, next_attempt_at) == (2, None)  # processed on its second try, once
    assert stack.value("SELECT t.code FROM billing_company c JOIN billing_tier t ON t.id = c.tier_id "
                       "WHERE c.id = %s", [acme_id]) == "pro"
    effects = stack.sql(
        "SELECT kind, count(*) FROM billing_billingevent WHERE stripe_event_id = %s GROUP BY kind", [event["id"]]
    )
    assert effects and {count for _, count in effects} == {1}  # each effect applied once
    assert "sweep_stripe_events" in stack.processes["beat"].output()
