"""The booking feed: the product backend reports bookings with its company key, a resend
is a duplicate, bad input names the field and stores nothing; quote→book reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from accounts.selectors import company_period
from billing.plans.models import Feature
from growth.models import Booking
from trans_bot.targets import business_targets
from usage.models import UsageCounter

pytestmark = pytest.mark.django_db
URL = "/api/v1/bookings/"
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_bookings_are_stored_once_per_key(make_company, key_client):
    acme = make_company()
    api = key_client(acme)
    batch = {
        "bookings": [
            {"idempotency_key": "booking-1", "occurred_at": "2026-11-20T09:30:00Z"},
            {"idempotency_key": "booking-2", "quantity": 3, "occurred_at": "2026-11-20T10:00:00+01:00"},
        ]
    }
    with time_machine.travel(NOW, tick=False):
        first = api.post(URL, batch, format="json")
        again = api.post(URL, {"bookings": [*batch["bookings"], {"idempotency_key": "booking-3"}]}, format="json")

    assert first.status_code == 200 and first.json() == {"accepted": 2, "duplicates": 0}
    assert again.json() == {"accepted": 1, "duplicates": 2}
    rows = sorted(Booking.objects.filter(company=acme).values_list("idempotency_key", "quantity", "occurred_at"))
    assert rows == [
        ("booking-1", 1, datetime(2026, 11, 20, 9, 30, tzinfo=UTC)),
        ("booking-2", 3, datetime(2026, 11, 20, 9, 0, tzinfo=UTC)),
        ("booking-3", 1, NOW),  # no occurred_at: now
    ]


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "bookings"),
        ({"bookings": []}, "bookings"),
        ({"bookings": [{"quantity": 1}]}, "bookings.1.idempotency_key"),
        ({"bookings": [{"idempotency_key": "k", "quantity": 0}]}, "bookings.1.quantity"),
        ({"bookings": [{"idempotency_key": "k", "occurred_at": "2026-11-20T09:30:00"}]}, "bookings.1.occurred_at"),
        ({"bookings": [{"idempotency_key": "k", "occurred_at": "2026-11-20T12:10:00Z"}]}, "bookings.1.occurred_at"),
    ],
)
def test_a_bad_batch_names_the_field_and_stores_nothing(make_company, key_client, body, field):
    api = key_client(make_company())
    ok = {"idempotency_key": "fine", "occurred_at": "2026-11-20T09:00:00Z"}
    if body.get("bookings"):
        body = {"bookings": [ok, *body["bookings"]]}
    with time_machine.travel(NOW, tick=False):
        response = api.post(URL, body, format="json")
    assert response.status_code == 400
    assert [f["field"] for f in response.json()["error"]["fields"]] == [field]
    assert not Booking.objects.exists()


def test_only_a_company_key_may_report_bookings(make_company):
    acme = make_company()
    assert APIClient().post(URL, {"bookings": [{"idempotency_key": "k"}]}, format="json").status_code == 401
    owner = APIClient()
    owner.force_authenticate(acme.owner)  # the frontend's user: the feed is the backend's
    assert owner.post(URL, {"bookings": [{"idempotency_key": "k"}]}, format="json").status_code == 403
    assert not Booking.objects.exists()


def test_quote_to_book_comes_from_the_feed(make_company, key_client):
    acme = make_company()
    start, end = company_period(acme, NOW)
    UsageCounter.objects.create(
        company=acme, feature=Feature.objects.get(code="quotes"), period_start=start, period_end=end, used=50,
        updated_at=NOW,
    )
    with time_machine.travel(NOW, tick=False):
        before = next(f for f in business_targets() if f.name == "Quote → book")
        sent = {"bookings": [{"idempotency_key": f"b{n}", "occurred_at": "2026-11-19T10:00:00Z"} for n in range(12)]}
        assert key_client(acme).post(URL, sent, format="json").status_code == 200
        after = next(f for f in business_targets() if f.name == "Quote → book")
    assert (before.value, before.shown) == (None, "needs the booking feed")
    assert (after.value, after.shown, after.colour) == (0.24, "24.0 %", "red")
    assert after.detail.startswith("12 bookings of 50 quotes this billing period, 1 company on the booking feed")


def test_an_old_booking_falls_off_the_feed(make_company):
    acme = make_company()
    Booking.objects.create(
        company=acme, idempotency_key="old", occurred_at=NOW - timedelta(days=32), received_at=NOW
    )
    figure = next(f for f in business_targets(now=NOW) if f.name == "Quote → book")
    assert figure.shown == "needs the booking feed"


def test_ops_read_the_feed_in_admin_and_cannot_edit_it(ops_client, make_company):
    acme = make_company()
    Booking.objects.create(company=acme, idempotency_key="booking-77", quantity=4, occurred_at=NOW, received_at=NOW)
    page = ops_client.get("/admin/growth/booking/?q=booking-77")
    assert page.status_code == 200
    body = page.content.decode()
    assert "booking-77" in body and acme.name in body
    assert ops_client.get("/admin/growth/booking/add/").status_code == 403
