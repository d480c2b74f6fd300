"""Routing middleware: headers, 307 for writes on a standby, 503 when nothing is healthy,
exempt paths, and no database query per request."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.http import HttpResponse
from django.test import RequestFactory

from audit.services import Actor
from regions import routing
from regions.middleware import RegionRoutingMiddleware
from regions.models import FailoverPolicy, Region, RegionStatus
from regions.services import region_fail_over

ok_view = RegionRoutingMiddleware(lambda request: HttpResponse("served"))


@pytest.fixture
def on_standby(primary, secondary, settings):
    """This deployment is the secondary; the primary is active."""
    settings.REGION_NAME = "secondary"
    routing.publish()
    return RegionRoutingMiddleware(lambda request: HttpResponse("served"))


def test_a_post_on_the_standby_gets_307_to_the_active_region(client, on_standby, primary):
    response = client.post("/api/v1/usage/events/?dry=1", {"a": 1}, content_type="application/json")
    assert response.status_code == 307
    assert response["Location"] == f"{primary.base_url}/api/v1/usage/events/?dry=1"
    assert response["X-Region"] == "secondary"
    assert response["X-Active-Region"] == "primary"


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_every_write_method_is_redirected(client, on_standby, primary, method):
    response = getattr(client, method)("/api/v1/regions/x/", content_type="application/json")
    assert response.status_code == 307


def test_reads_are_served_on_the_standby_by_default(on_standby):
    response = on_standby(RequestFactory().get("/api/v1/regions/"))
    assert response.status_code == 200 and response.content == b"served"
    assert response["X-Active-Region"] == "primary"


def test_reads_are_redirected_when_the_policy_says_so(on_standby, primary):
    FailoverPolicy.objects.filter(pk=1).update(read_policy="redirect")
    routing.publish()
    response = on_standby(RequestFactory().get("/api/v1/regions/?page=2"))
    assert response.status_code == 307
    assert response["Location"] == f"{primary.base_url}/api/v1/regions/?page=2"


@pytest.mark.parametrize("path", ["/healthz", "/admin/regions/region/", "/api/v1/billing/stripe/webhook/"])
def test_exempt_paths_are_never_redirected(on_standby, path):
    response = on_standby(RequestFactory().post(path))
    assert response.status_code == 200
    assert response["X-Region"] == "secondary"


def test_writes_on_the_active_region_are_served(primary, secondary, settings):
    settings.REGION_NAME = "primary"
    routing.publish()
    middleware = RegionRoutingMiddleware(lambda request: HttpResponse("served"))
    response = middleware(RequestFactory().post("/api/v1/usage/events/"))
    assert response.status_code == 200
    assert (response["X-Region"], response["X-Active-Region"]) == ("primary", "primary")


def test_writes_get_503_with_retry_after_when_no_region_is_healthy(on_standby, primary):
    Region.objects.filter(pk=primary.pk).update(status=RegionStatus.UNHEALTHY)
    routing.publish()
    response = on_standby(RequestFactory().post("/api/v1/usage/events/"))
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert (response["Content-Type"], json.loads(response.content)) == (
        "application/json",
        {
            "error": {
                "status": 503,
                "code": "no_healthy_region",
                "message": "No healthy region is taking writes right now; retry shortly.",
                "fields": [],
            }
        },
    )
    assert on_standby(RequestFactory().get("/api/v1/regions/")).status_code == 200  # reads still served


def test_single_region_mode_only_adds_headers(on_standby):
    FailoverPolicy.objects.filter(pk=1).update(multi_region_enabled=False)
    routing.publish()
    response = on_standby(RequestFactory().post("/api/v1/usage/events/"))
    assert response.status_code == 200
    assert response["X-Region"] == "secondary" and response["X-Active-Region"] == "primary"


def test_it_costs_no_database_query_per_request(on_standby, django_assert_num_queries):
    factory = RequestFactory()
    with django_assert_num_queries(0):
        for _ in range(50):
            assert on_standby(factory.post("/api/v1/usage/events/")).status_code == 307
            assert on_standby(factory.get("/api/v1/regions/")).status_code == 200


def test_a_cold_process_reads_the_cache_not_the_database(on_standby, django_assert_num_queries):
    routing.forget_local()  # as a freshly started worker process
    with django_assert_num_queries(0):
        assert on_standby(RequestFactory().post("/api/v1/x/")).status_code == 307


def test_a_failover_reaches_every_process_within_a_second(on_standby, secondary, primary):
    t0 = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(t0, tick=False) as clock:
        routing.forget_local()
        assert on_standby(RequestFactory().post("/api/v1/x/")).status_code == 307  # snapshot taken
        # Another process fails over: it writes the database and the cache, not our memory.
        snapshot = routing._state
        region_fail_over(to=secondary, reason="drill", actor=Actor.system("test"))
        routing.publish()  # what on_commit does in that process
        routing._state, routing._loaded_at = snapshot, t0.timestamp()
        clock.shift(0.5)
        assert on_standby(RequestFactory().post("/api/v1/x/")).status_code == 307  # still the old view
        clock.shift(0.6)
        assert on_standby(RequestFactory().post("/api/v1/x/")).status_code == 200  # we are active now
    assert cache.get(routing.CACHE_KEY)["active"] == "secondary"


def test_an_empty_cache_costs_no_query_and_the_next_cycle_refills_it(
    primary, secondary, settings, cycle, django_assert_num_queries, django_capture_on_commit_callbacks
):
    settings.REGION_NAME = "secondary"
    middleware = RegionRoutingMiddleware(lambda request: HttpResponse("served"))
    with django_assert_num_queries(0):
        response = middleware(RequestFactory().post("/api/v1/x/"))
    assert response.status_code == 200  # nothing known yet: single-region behaviour, headers only
    assert response["X-Region"] == "secondary"

    with django_capture_on_commit_callbacks(execute=True):
        cycle()
    routing.forget_local()
    assert middleware(RequestFactory().post("/api/v1/x/")).status_code == 307


@pytest.fixture
def operator(client, staff_user):
    staff_user.user_permissions.add(Permission.objects.get(codename="fail_over"))
    client.force_login(staff_user)
    return client


def test_manual_failover_gets_through_when_the_active_region_is_down(operator, on_standby, primary):
    """Writes get 503 while nothing healthy is active, but the failover that fixes it must not."""
    Region.objects.filter(pk=primary.pk).update(status=RegionStatus.UNHEALTHY, consecutive_failures=5)
    routing.publish()
    assert operator.post("/api/v1/usage/events/", {}, content_type="application/json").status_code == 503

    response = operator.post(
        "/api/v1/regions/failover/",
        {"to": "secondary", "reason": "primary is down", "force": True},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert Region.objects.get(is_active=True).slug == "secondary"
    assert response["X-Region"] == "secondary"


def test_manual_failover_on_the_standby_is_not_sent_to_the_active_region(operator, on_standby, primary):
    """The active region may be dead before the prober says so: a 307 there would strand the operator."""
    assert operator.post("/api/v1/usage/events/", {}, content_type="application/json").status_code == 307

    response = operator.post(
        "/api/v1/regions/failover/", {"to": "secondary", "reason": "game day"}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    assert Region.objects.get(is_active=True).slug == "secondary"
