"""Every endpoint in the OpenAPI schema is fuzzed: no input may cause a 5xx, and every
response must match the schema. New endpoints are covered as soon as they are added."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.billing.stripe_fixtures import fake_stripe, stripe_catalogue  # noqa: F401  (fixtures)
from trans_bot.wsgi import application


@pytest.fixture
def api_schema(db):
    # Like Django's test client: keep the test's connection (and its transaction) open
    # across the WSGI calls instead of closing it at the end of each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema/", application)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def staff_token(ops_user):
    return Token.objects.create(user=ops_user).key


@pytest.fixture
def lived_in(db, ops_user, fake_stripe, stripe_catalogue):  # noqa: F811 (imported fixtures)
    """Data for the fuzzer to hit: two healthy regions with multi-region on (so routing,
    failover and status have something to do), a company the caller owns, with usage, and
    the stand-in Stripe behind billing."""
    from django.utils import timezone

    from accounts.models import Company, Membership
    from billing.plans.models import Feature
    from regions import routing
    from regions.models import Region
    from regions.selectors import policy_get
    from usage.services import usage_record_events
    from usage.validation import validate_batch

    for order, slug in enumerate(["primary", "secondary"]):
        Region.objects.create(
            name=slug.title(), slug=slug, base_url=f"http://127.0.0.1:{9 + order}", order=order,
            is_active=order == 0, status="healthy", consecutive_successes=5,
        )
    policy = policy_get()
    policy.multi_region_enabled = True
    policy.save()
    routing.publish()
    acme = Company.objects.create(name="Acme Freight", slug="acme")
    Membership.objects.create(user=ops_user, company=acme, role="owner")
    events = validate_batch(
        {"events": [{"feature": "quotes", "quantity": 900, "idempotency_key": "seed"}]},
        features=dict(Feature.objects.values_list("code", "id")), anchor_day=acme.billing_anchor_day,
        now=timezone.now(),
    )
    usage_record_events(company=acme, events=events)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_causes_a_server_error_or_breaks_the_schema(case, staff_token, lived_in):
    case.call_and_validate(
        headers={"Authorization": f"Token {staff_token}"},
        checks=[not_a_server_error, response_schema_conformance],
    )


def test_the_schema_and_docs_are_served(client):
    schema_response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema_response.status_code == 200
    assert schema_response.json()["info"]["title"] == "Trans Bot back office API"
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
