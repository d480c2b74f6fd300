"""A company's users and keys see only that company: anything else is 404."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from accounts.models import Membership

pytestmark = pytest.mark.django_db
URL = "/api/v1/usage/summary/"


def test_a_key_of_one_company_gets_404_for_another(acme, globex, key_client):
    client = key_client(acme)
    assert client.get(URL, {"company": globex.slug}).status_code == 404
    assert client.get(URL, {"company": str(globex.pk)}).status_code == 404
    r = client.get(URL, {"company": acme.slug})
    assert r.status_code == 200
    assert r.json()["company"]["slug"] == acme.slug


def test_a_user_of_one_company_gets_404_for_another(acme, globex, member_client):
    client = member_client(acme.owner)
    r = client.get(URL, {"company": globex.slug})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert client.get(URL, {"company": "no-such-company"}).status_code == 404
    assert client.get(URL).json()["company"]["slug"] == acme.slug


def test_a_user_without_a_company_gets_404(acme, outsider, member_client):
    client = member_client(outsider)
    assert client.get(URL).status_code == 404
    assert client.get(URL, {"company": acme.slug}).status_code == 404


def test_a_member_of_two_companies_names_one(acme, globex, member_client):
    Membership.objects.create(user=acme.owner, company=globex, role="member")
    client = member_client(acme.owner)
    r = client.get(URL)
    assert r.status_code == 400
    assert r.json()["error"]["fields"][0]["field"] == "company"
    assert client.get(URL, {"company": globex.slug}).json()["company"]["slug"] == globex.slug


def test_staff_may_look_at_any_company(acme, globex, ops_user, member_client):
    client = member_client(ops_user)
    assert client.get(URL, {"company": globex.slug}).json()["company"]["slug"] == globex.slug
    assert client.get(URL).status_code == 400


def test_staff_read_other_companies_only_with_the_permission_to_view_companies(
    acme, globex, staff_user, member_client, django_user_model
):
    client = member_client(staff_user)
    refused = client.get(URL, {"company": globex.slug})
    assert refused.status_code == 403
    assert "accounts.view_company" in refused.json()["error"]["message"]
    assert "Globex" not in refused.content.decode()
    assert client.get(URL).status_code == 403
    assert client.get(URL, {"company": "no-such-company"}).status_code == 404

    staff_user.user_permissions.add(Permission.objects.get(codename="view_company"))
    client = member_client(django_user_model.objects.get(pk=staff_user.pk))
    assert client.get(URL, {"company": globex.slug}).json()["company"]["slug"] == globex.slug


def test_staff_read_their_own_company_like_any_member(acme, staff_user, member_client):
    Membership.objects.create(user=staff_user, company=acme, role="member")
    assert member_client(staff_user).get(URL).json()["company"]["slug"] == acme.slug


def test_events_of_one_key_never_reach_another_company(acme, globex, key_client):
    key_client(acme).post(
        "/api/v1/usage/events/", {"events": [{"feature": "quotes", "idempotency_key": "a"}]}, format="json"
    )
    other = key_client(globex).get(URL).json()
    assert next(f for f in other["features"] if f["feature"] == "quotes")["used"] == 0


def test_anonymous_gets_nothing(acme, client):
    response = client.get(URL, {"company": acme.slug})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize("ref", ["²", "1\x00", "\x00"])
def test_an_odd_company_reference_is_a_404_not_a_crash(acme, ops_user, member_client, ref):
    assert member_client(ops_user).get(URL, {"company": ref}).status_code == 404
