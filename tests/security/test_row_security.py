"""Row-level security backs up the application's company filter: a query that forgets it
(``UsageEvent.objects.all()`` in a view) still sees only the caller's rows."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Membership
from billing.plans.models import Feature
from core import tenant_scope
from trans_bot.celery import app as celery_app
from usage.models import UsageEvent

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.urls("tests.security.urls"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level security is PostgreSQL's"),
]


def seen(client) -> dict:
    response = client.get("/every-event/")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_request_with_a_companys_api_key_sees_only_that_companys_rows(acme, globex):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {acme.api_key}")
    assert seen(client) == {"companies": [acme.pk], "count": 3}


def test_a_members_session_sees_only_their_companys_rows(acme, globex, client):
    client.force_login(globex.owner)
    assert seen(client) == {"companies": [globex.pk], "count": 2}


def test_a_member_of_two_companies_sees_both_and_no_other(make_tenant, acme, globex, client):
    third = make_tenant("Initech", events=1)
    Membership.objects.create(user=acme.owner, company=third, role="member")
    client.force_login(acme.owner)
    assert seen(client) == {"companies": sorted([acme.pk, third.pk]), "count": 4}


def test_a_request_without_a_caller_sees_no_tenant_rows(acme, globex, client):
    assert seen(client) == {"companies": [], "count": 0}


def test_a_wrong_secret_for_a_real_key_prefix_is_refused(acme, globex):
    client = APIClient()
    prefix = acme.api_key.partition(".")[0]
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {prefix}.not-the-secret")
    assert client.get("/every-event/").status_code == 401


def test_staff_see_every_company_in_the_ops_scope(acme, globex, ops_user, client):
    client.force_login(ops_user)
    assert seen(client) == {"companies": sorted([acme.pk, globex.pk]), "count": 5}


def test_test_code_runs_in_the_ops_scope_and_gets_it_back_after_a_request(acme, globex, client):
    assert UsageEvent.objects.count() == 5
    client.force_login(acme.owner)
    assert seen(client)["count"] == 3
    assert UsageEvent.objects.count() == 5


def test_an_explicit_scope_narrows_the_block_and_restores_after(acme, globex):
    with tenant_scope.scoped(tenant_scope.company(acme.pk, reason="test")):
        assert set(UsageEvent.objects.values_list("company_id", flat=True)) == {acme.pk}
        with tenant_scope.scoped(tenant_scope.NOTHING):
            assert UsageEvent.objects.count() == 0
        assert UsageEvent.objects.count() == 3
    assert UsageEvent.objects.count() == 5


def test_a_company_scope_cannot_write_another_companys_rows(acme, globex):
    quotes = Feature.objects.get(code="quotes")
    now = timezone.now()
    with tenant_scope.scoped(tenant_scope.company(acme.pk, reason="test")):
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            UsageEvent.objects.create(
                company=globex, feature=quotes, quantity=1, idempotency_key="forged", fingerprint="f" * 64,
                occurred_at=now, received_at=now, period_start=now,
            )
        assert UsageEvent.objects.filter(company=globex).update(quantity=99) == 0
        assert UsageEvent.objects.filter(company=globex).delete()[0] == 0
    assert list(UsageEvent.objects.filter(company=globex).values_list("quantity", flat=True)) == [1, 1]


def test_a_rolled_back_scope_change_is_applied_again(acme, globex):
    """The scope lives in the connection's settings, which a rollback undoes."""
    with tenant_scope.scoped(tenant_scope.company(acme.pk, reason="test")):
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            assert UsageEvent.objects.count() == 3  # the scope is applied inside the savepoint
            raise ZeroDivisionError
        assert UsageEvent.objects.count() == 3
    assert UsageEvent.objects.count() == 5


@celery_app.task(name="tests.security.count_events")
def count_events() -> int:
    return UsageEvent.objects.count()


def test_a_celery_task_runs_in_the_ops_scope_named_after_it(acme, globex):
    with tenant_scope.scoped(tenant_scope.NOTHING):
        assert UsageEvent.objects.count() == 0
        assert count_events.apply().get() == 5
        assert UsageEvent.objects.count() == 0


def test_the_connection_names_the_scope_it_runs_in(acme):
    with tenant_scope.ops_scope("command:audit_verify"), connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('app.scope'), current_setting('app.scope_reason'), "
            "current_setting('application_name')"
        )
        assert cursor.fetchone() == ("ops", "command:audit_verify", "trans_bot ops command:audit_verify")
