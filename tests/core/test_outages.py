"""PostgreSQL gone: every endpoint, DRF or plain Django, answers 503 in the API's one error
shape with Retry-After, whatever DEBUG says; never Django's HTML 500 page. The connection
is cut for real (``pg_terminate_backend``, what a PostgreSQL restart does to it)."""

from __future__ import annotations

import psycopg
import pytest
from django.db import close_old_connections, connection
from rest_framework.authtoken.models import Token

from accounts.models import Company, CompanyAPIKey
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit
from core.outages import outage_part

pytestmark = pytest.mark.django_db(transaction=True)


def _cut_the_database_connection() -> None:
    """Terminate this process's PostgreSQL backend from another connection."""
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def _assert_outage_answer(response, what: str) -> None:
    assert response.status_code == 503, (what, response.status_code, response.content[:200])
    assert response["Content-Type"] == "application/json", what
    assert response["Retry-After"] == "10", what
    assert response.json() == {
        "error": {
            "status": 503,
            "code": "database_unavailable",
            "message": "The service is temporarily unavailable (database unreachable); try again shortly.",
            "fields": [],
        }
    }, what


@pytest.fixture
def callers(ops_user):
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)  # flushed by transactional tests
    acme = Company.objects.create(name="Acme Freight", slug="acme", tier=Tier.objects.get(code="starter"))
    _, secret = CompanyAPIKey.objects.create_key(company=acme, name="backend")
    return {"token": Token.objects.create(user=ops_user).key, "key": secret}


@pytest.mark.parametrize("debug", [False, True], ids=["DEBUG=false", "DEBUG=true"])
def test_with_the_database_gone_every_kind_of_endpoint_answers_503_json(client, ops_user, callers, settings, debug):
    settings.DEBUG = debug
    client.force_login(ops_user)
    token = {"HTTP_AUTHORIZATION": f"Token {callers['token']}"}
    key = {"HTTP_AUTHORIZATION": f"Api-Key {callers['key']}"}
    requests = {
        "DRF, session": lambda: client.get("/api/v1/plans/"),
        "DRF, token": lambda: client.get("/api/v1/regions/", **token),
        "DRF, API key, write": lambda: client.post(
            "/api/v1/usage/events/",
            {"events": [{"feature": "quotes", "idempotency_key": "k"}]},
            content_type="application/json",
            **key,
        ),
        "Django admin": lambda: client.get("/admin/"),
        "account pages": lambda: client.get("/account/"),
        "Stripe webhook (plain view)": lambda: client.post(
            "/api/v1/billing/stripe/webhook/", b"{}", content_type="application/json"
        ),
    }
    try:
        for what, request in requests.items():
            _cut_the_database_connection()
            _assert_outage_answer(request(), what)
    finally:
        connection.close()


def test_once_the_database_is_back_the_next_request_works_without_a_restart(client, callers):
    _cut_the_database_connection()
    token = {"HTTP_AUTHORIZATION": f"Token {callers['token']}"}
    _assert_outage_answer(client.get("/api/v1/plans/", **token), "while down")

    close_old_connections()  # what Django does at the start of every request (request_started)
    assert client.get("/api/v1/plans/", **token).status_code == 200


def test_only_an_unreachable_part_is_an_outage_not_a_bug():
    import kombu.exceptions
    import redis.exceptions
    from django import db

    assert outage_part(db.OperationalError("server closed the connection")) == "database"
    assert outage_part(db.InterfaceError("connection already closed")) == "database"
    assert outage_part(redis.exceptions.ConnectionError("refused")) == "cache"
    assert outage_part(kombu.exceptions.OperationalError("broker")) == "broker"
    assert outage_part(db.DataError("NUL")) is None
    assert outage_part(db.IntegrityError("duplicate")) is None
    assert outage_part(ValueError("bug")) is None
    try:
        try:
            raise redis.exceptions.ConnectionError("refused")
        except redis.exceptions.ConnectionError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert outage_part(wrapped) == "cache"
