"""Every Stripe failure leaves a trace ops can follow: a billing event or an ops task, and
a log line naming Stripe's request id (the key to Stripe's own request log)."""

from __future__ import annotations

import logging
import re

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.stripe.models import BillingEvent, BillingEventStatus, CompanyStripe
from billing.stripe.reconcile import billing_reconcile
from ops.models import OpsTask
from tests.billing.stripe_fixtures import with_customer

pytestmark = pytest.mark.django_db
PORTAL = "/api/v1/billing/portal/"
UPGRADE = "/api/v1/billing/upgrade/"
REQUEST_ID = re.compile(r"request (req_\w+)")


def _as(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def _logged_request_ids(caplog) -> list[str]:
    return [
        m.group(1)
        for r in caplog.records
        if r.name == "billing.stripe.gateway" and r.levelno == logging.WARNING
        for m in [REQUEST_ID.search(r.getMessage())]
        if m
    ]


def test_a_refused_portal_session_leaves_an_ops_task_and_a_log_line_with_the_request_id(
    fake_stripe, stripe_company, caplog
):
    acme = stripe_company("starter", name="Acme Freight")
    CompanyStripe.objects.create(company=acme, customer_id="cus_deleted_at_stripe")

    with caplog.at_level(logging.WARNING, logger="billing.stripe.gateway"):
        response = _as(acme.owner).post(PORTAL, {}, format="json")

    assert response.status_code == 502
    assert response.json()["error"]["message"] == "Stripe refused the request; the ops team has the details."
    [request_id] = _logged_request_ids(caplog)
    task = OpsTask.objects.get(kind="billing.stripe_refused")
    assert task.title == "Stripe refused to open the billing portal for Acme Freight"
    assert task.company == acme and task.severity == "high"
    assert request_id in task.details and "cus_deleted_at_stripe" in task.details

    # A second click the same day adds to nothing but the log.
    _as(acme.owner).post(PORTAL, {}, format="json")
    assert OpsTask.objects.filter(kind="billing.stripe_refused").count() == 1


def test_stripe_down_for_the_portal_leaves_one_ops_task_a_day(fake_stripe, stripe_company, caplog):
    acme, globex = stripe_company("starter"), stripe_company("pro")
    with_customer(fake_stripe, acme)
    with_customer(fake_stripe, globex)
    fake_stripe.fail_next(2, 503)

    with caplog.at_level(logging.WARNING, logger="billing.stripe.gateway"):
        assert _as(acme.owner).post(PORTAL, {}, format="json").status_code == 503
        assert _as(globex.owner).post(PORTAL, {}, format="json").status_code == 503

    assert len(_logged_request_ids(caplog)) == 2
    task = OpsTask.objects.get(kind="billing.stripe_unavailable")
    assert "Stripe 503 error" in task.details and "status.stripe.com" in task.details


def test_a_refused_upgrade_records_the_request_id_on_its_billing_event(fake_stripe, stripe_company, caplog):
    acme = stripe_company("starter")
    CompanyStripe.objects.create(company=acme, customer_id="cus_deleted_at_stripe")

    with caplog.at_level(logging.WARNING, logger="billing.stripe.gateway"):
        assert _as(acme.owner).post(UPGRADE, {"tier": "pro"}, format="json").status_code == 502

    [request_id] = _logged_request_ids(caplog)
    failed = BillingEvent.objects.get()
    assert failed.status == BillingEventStatus.FAILED
    assert f"(request {request_id})" in failed.error


def test_a_reconcile_stripe_cannot_answer_leaves_an_ops_task(fake_stripe, stripe_company, caplog):
    acme = stripe_company("starter", name="Acme Freight")
    with_customer(fake_stripe, acme)
    fake_stripe.fail_next(2, 500)

    with caplog.at_level(logging.WARNING, logger="billing.stripe.gateway"):
        rows = billing_reconcile(at=timezone.now())

    assert [bool(r.error) for r in rows] == [True, True]
    tasks = OpsTask.objects.filter(kind="billing.reconcile_failed", company=acme)
    assert tasks.count() == 2
    ids = _logged_request_ids(caplog)
    assert len(ids) == 2 and all(any(i in t.details for i in ids) for t in tasks)
