"""Every endpoint in the OpenAPI schema is fuzzed: no input may cause a 5xx, and every
response must match the schema. New endpoints are covered as soon as they are added."""

from urllib.parse import urlencode

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


def test_the_schema_and_docs_are_served(client, db):  # the quote API reads its features into the schema
    schema_response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema_response.status_code == 200
    assert schema_response.json()["info"]["title"] == "Trans Bot back office API"
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


# --- Hostile JSON on every operation ---------------------------------------------------
# What Python's json accepts but PostgreSQL, the renderer or the stack do not: each must be
# a 400 naming the field (or the body), never a 5xx. The operations come from the served
# schema, so a new endpoint is covered as soon as it is added.


def _operations(client) -> list[tuple[str, str, dict]]:
    spec = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body and "$ref" in body:
                body = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
            query = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
            found.append((method.upper(), path, {"body": body or {}, "query": query}))
    return found


def _a_field(body_schema: dict) -> str:
    """A property the operation declares (a string one if any), to put the bad value in."""
    properties = body_schema["properties"]
    strings = [name for name, spec in properties.items() if spec.get("type") == "string"]
    return (strings or list(properties))[0]


def _hostile_bodies(field: str) -> list[tuple[str, bytes, str | None, str]]:
    """(case, raw body, the field the 400 must name or None for the body as a whole, code)."""
    name = field.encode()
    return [
        ("NUL in a value", b'{"%s": "a\\u0000b"}' % name, field, "null_character"),
        ("lone surrogate in a value", b'{"%s": "k\\ud800"}' % name, field, "lone_surrogate"),
        ("lone surrogate in a field name", b'{"\\udc00x": "v"}', "\\udc00x", "lone_surrogate"),
        ("NUL in a field name", b'{"a\\u0000": "v"}', "a\\x00", "null_character"),
        ("2**70", b'{"%s": %d}' % (name, 2**70), field, "number_out_of_range"),
        ("-2**70", b'{"%s": %d}' % (name, -(2**70)), field, "number_out_of_range"),
        ("a list nested 5,000 deep", b"[" * 5000 + b"]" * 5000, None, "too_deep"),
        ("an object nested 5,000 deep", b'{"a":' * 5000 + b"1" + b"}" * 5000, None, "too_deep"),
    ]


@pytest.fixture
def auth_for(lived_in, ops_user):
    """Credentials for an operation: a company API key for ingestion, the booking feed and
    the entitlement check, the ops user's token else."""
    from accounts.models import Company, CompanyAPIKey

    _, secret = CompanyAPIKey.objects.create_key(company=Company.objects.get(slug="acme"), name="fuzz")
    token = Token.objects.create(user=ops_user).key

    def headers(path: str) -> dict:
        if path in ("/api/v1/usage/events/", "/api/v1/bookings/") or path.startswith("/api/v1/entitlements/"):
            return {"HTTP_AUTHORIZATION": f"Api-Key {secret}"}
        return {"HTTP_AUTHORIZATION": f"Token {token}"}

    return headers


def test_hostile_json_is_a_400_naming_the_field_on_every_operation(client, auth_for):
    operations = [(m, p, o) for m, p, o in _operations(client) if o["body"].get("properties")]
    assert len(operations) >= 7  # login, logout-less auth calls, portal, upgrade, failover, events, ...
    wrong = []
    for method, path, operation in operations:
        field = _a_field(operation["body"])
        for case, raw, blamed, code in _hostile_bodies(field):
            response = client.generic(method, path, raw, content_type="application/json", **auth_for(path))
            got = response.json().get("error", {}) if response.get("Content-Type") == "application/json" else {}
            if blamed is None:
                ok = response.status_code == 400 and (got.get("code"), got.get("fields")) == (code, [])
            else:
                first = (got.get("fields") or [{}])[0]
                ok = (
                    response.status_code == 400
                    and got.get("code") == "invalid"
                    and (first.get("field"), first.get("code")) == (blamed, code)
                    and got.get("message", "").startswith(f"{blamed}: ")
                )
            if not ok:
                wrong.append(f"{method} {path}, {case}: {response.status_code} {response.content[:200]!r}")
    assert wrong == []


def test_hostile_query_values_never_give_a_server_error(client, auth_for):
    wrong = []
    for method, path, operation in _operations(client):
        for name in operation["query"]:
            for value in ["\x00", "a\x00b", "\ud800", "9" * 30, "-" + "9" * 30]:
                query = urlencode({name: value}, errors="surrogatepass")  # a surrogate as raw UTF-8 bytes
                response = client.generic(method, path, QUERY_STRING=query, **auth_for(path))
                if response.status_code >= 500 or (
                    response.status_code >= 400 and "error" not in response.json()
                ):
                    wrong.append(f"{method} {path}?{name}={value!r}: {response.status_code}")
    assert wrong == []


def test_a_nul_or_surrogate_deep_inside_a_batch_names_its_path(client, auth_for):
    from usage.models import UsageEvent

    path = "/api/v1/usage/events/"
    for raw, code in [
        (b'{"events": [{"feature": "quotes", "idempotency_key": "ok"}, '
         b'{"feature": "quotes", "idempotency_key": "k\\u0000"}]}', "null_character"),
        (b'{"events": [{"feature": "quotes", "idempotency_key": "ok"}, '
         b'{"feature": "quotes", "idempotency_key": "\\ud83d"}]}', "lone_surrogate"),
    ]:
        response = client.post(path, raw, content_type="application/json", **auth_for(path))
        assert response.status_code == 400
        first = response.json()["error"]["fields"][0]
        assert (first["field"], first["code"]) == ("events.1.idempotency_key", code)
    assert not UsageEvent.objects.filter(idempotency_key="ok").exists()


def test_a_nul_in_the_failover_target_is_a_400_naming_it(client, auth_for):
    from regions.models import Region

    path = "/api/v1/regions/failover/"
    response = client.post(
        path, b'{"to": "secondary\\u0000", "reason": "drill"}', content_type="application/json", **auth_for(path)
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["field"] == "to"
    assert Region.objects.get(is_active=True).slug == "primary"
