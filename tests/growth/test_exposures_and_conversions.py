"""Exposures are counted once a day; a conversion is a completed upgrade (Stripe's
webhook applying a dearer tier) inside the window after the first exposure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from audit.services import Actor
from billing.stripe.models import StripeWebhookEvent
from billing.stripe.webhook_processing import webhook_event_process
from growth.models import Conversion, Exposure, ExposureSource
from growth.services import experiment_start, exposure_record
from tests.billing.stripe_fixtures import *  # noqa: F401,F403
from tests.billing.stripe_fixtures import WEBHOOK_SECRET
from tests.fakes.stripe_server import make_event, signed_webhook
from tests.growth.conftest import company_in

pytestmark = pytest.mark.django_db
OPS = Actor.system("test")
DAY_ONE = datetime(2026, 11, 10, 9, tzinfo=UTC)
EXPOSURES = "/api/v1/experiments/exposures/"


def test_an_exposure_counts_once_per_company_and_day(make_experiment, make_company):
    experiment = experiment_start(experiment=make_experiment(), actor=OPS, now=DAY_ONE)
    acme = company_in("b", experiment, make_company)

    shown = [
        exposure_record(
            company=acme, experiment=experiment, source=ExposureSource.PAGE, now=DAY_ONE + timedelta(hours=h)
        )
        for h in (0, 1, 5)
    ]
    next_day = exposure_record(
        company=acme, experiment=experiment, source=ExposureSource.API, now=DAY_ONE + timedelta(days=1)
    )

    assert shown == [True, False, False] and next_day is True
    assert list(Exposure.objects.order_by("day").values_list("variant__key", "day")) == [
        ("b", DAY_ONE.date()),
        ("b", (DAY_ONE + timedelta(days=1)).date()),
    ]


def test_the_holdout_is_counted_without_a_variant_once_a_day(make_experiment, make_company):
    experiment = experiment_start(experiment=make_experiment(holdout="0.5"), actor=OPS, now=DAY_ONE)
    held = company_in(None, experiment, make_company)
    first = exposure_record(company=held, experiment=experiment, source=ExposureSource.PAGE, now=DAY_ONE)
    again = exposure_record(company=held, experiment=experiment, source=ExposureSource.PAGE, now=DAY_ONE)
    assert (first, again) == (True, False)
    assert list(Exposure.objects.values_list("company", "variant")) == [(held.pk, None)]


def test_the_frontend_records_an_exposure_with_its_api_key(make_experiment, make_company, key_client):
    experiment = experiment_start(experiment=make_experiment(), actor=OPS)
    acme = company_in("a", experiment, make_company)
    api = key_client(acme)

    first = api.post(EXPOSURES, {"experiment": experiment.key}, format="json")
    again = api.post(EXPOSURES, {"experiment": experiment.key}, format="json")

    assert first.status_code == 200 and first.json() == {"recorded": True, "variant": "a"}
    assert again.json() == {"recorded": False, "variant": "a"}
    assert Exposure.objects.get().source == ExposureSource.API


def test_bad_exposure_requests_name_the_field(make_experiment, make_company, key_client):
    experiment = make_experiment()  # still a draft
    api = key_client(make_company())
    missing = api.post(EXPOSURES, {}, format="json")
    unknown = api.post(EXPOSURES, {"experiment": "nope"}, format="json")
    draft = api.post(EXPOSURES, {"experiment": experiment.key}, format="json")
    assert missing.status_code == 400 and "experiment" in str(missing.json())
    assert unknown.status_code == 400 and "experiment" in str(unknown.json())
    assert draft.status_code == 409
    assert APIClient().post(EXPOSURES, {"experiment": experiment.key}, format="json").status_code in (401, 403)


def _deliver(client, event: dict) -> str:
    body, header = signed_webhook(event, WEBHOOK_SECRET)
    response = client.post(
        "/api/v1/billing/stripe/webhook/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    assert response.status_code == 200
    return webhook_event_process(webhook_event_id=StripeWebhookEvent.objects.get(stripe_id=event["id"]).pk)


def _upgrade_through_stripe(client, fake_stripe, company, *, at: datetime) -> None:
    """The owner clicks Upgrade to Pro, pays in Checkout, and Stripe's webhooks arrive."""
    api = APIClient()
    api.force_authenticate(company.owner)
    with time_machine.travel(at, tick=False):
        assert api.post("/api/v1/billing/upgrade/", {"tier": "pro"}, format="json").status_code == 200
        (session,) = fake_stripe.checkout_sessions.values()
        completed = fake_stripe.complete_checkout_session(session["id"])
        assert _deliver(client, make_event("checkout.session.completed", completed)) == "processed"
        subscription = fake_stripe.subscriptions[completed["subscription"]]
        assert _deliver(client, make_event("customer.subscription.created", subscription)) == "processed"
    company.refresh_from_db()
    assert company.tier.code == "pro"


@pytest.mark.parametrize("days_later,converts", [(3, True), (13, True), (15, False)])
def test_a_completed_upgrade_converts_only_inside_the_window(
    client, fake_stripe, stripe_company, stripe_catalogue, make_experiment, days_later, converts
):
    experiment = experiment_start(experiment=make_experiment(), actor=OPS, now=DAY_ONE)  # 14-day window
    acme = company_in("b", experiment, stripe_company)
    exposure_record(company=acme, experiment=experiment, source=ExposureSource.PAGE, now=DAY_ONE)
    exposure_record(company=acme, experiment=experiment, source=ExposureSource.PAGE, now=DAY_ONE + timedelta(days=5))

    _upgrade_through_stripe(client, fake_stripe, acme, at=DAY_ONE + timedelta(days=days_later))

    conversions = list(Conversion.objects.filter(company=acme))
    assert len(conversions) == (1 if converts else 0)
    if converts:
        (conversion,) = conversions
        assert conversion.variant.key == "b" and conversion.first_exposed_at == DAY_ONE
        starter, pro = stripe_catalogue["starter"], stripe_catalogue["pro"]
        assert conversion.revenue_uplift == pro.monthly_price - starter.monthly_price


def test_clicking_upgrade_without_paying_is_no_conversion(client, fake_stripe, stripe_company, make_experiment):
    experiment = experiment_start(experiment=make_experiment(), actor=OPS, now=DAY_ONE)
    acme = company_in("a", experiment, stripe_company)
    exposure_record(company=acme, experiment=experiment, source=ExposureSource.PAGE, now=DAY_ONE)
    api = APIClient()
    api.force_authenticate(acme.owner)
    with time_machine.travel(DAY_ONE + timedelta(days=1), tick=False):
        assert api.post("/api/v1/billing/upgrade/", {"tier": "pro"}, format="json").status_code == 200
    assert not Conversion.objects.exists()


def test_an_upgrade_without_a_prior_exposure_is_no_conversion(client, fake_stripe, stripe_company, make_experiment):
    experiment = experiment_start(experiment=make_experiment(), actor=OPS, now=DAY_ONE)
    acme = company_in("b", experiment, stripe_company)
    _upgrade_through_stripe(client, fake_stripe, acme, at=DAY_ONE + timedelta(days=1))
    exposure_record(company=acme, experiment=experiment, source=ExposureSource.PAGE, now=DAY_ONE + timedelta(days=2))
    assert not Conversion.objects.exists()
