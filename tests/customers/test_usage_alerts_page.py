"""The account page where owners set their own alert levels and monthly spend cap:
owners only, audited, bad input is a form error naming the field and changes nothing."""

from __future__ import annotations

import html as html_lib
import re

import pytest

from accounts.models import Company
from audit.models import AuditLog

pytestmark = pytest.mark.django_db
URL = "/account/alerts/?company=acme"


def text(response) -> str:
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip())


def signed_in(client, user):
    client.force_login(user)
    return client


def test_an_owner_sees_the_plans_levels_and_this_periods_overage(client, acme, frozen):
    page = signed_in(client, acme.owner).get(URL)
    assert page.status_code == 200
    shown = text(page)
    assert "Your plan's levels: 80 %, 100 %" in shown
    assert "Overage this period so far: 15.00 USD" in shown  # 60 directory invites over at 0.25 USD
    assert 'href="/account/alerts/?company=acme"' in page.content.decode()


def test_an_owner_sets_levels_and_a_cap_and_it_is_audited(client, acme, frozen):
    r = signed_in(client, acme.owner).post(URL, {"alert_levels": "90, 50 %, 50", "spend_cap": "25.50"})
    assert r.status_code == 302
    acme.refresh_from_db()
    assert (acme.alert_levels, acme.spend_cap) == ([50, 90], 2550)
    audit = AuditLog.objects.get(action="usage.alerts.update")
    assert audit.actor_label == "olga" and audit.company_id == acme.pk
    assert audit.details["changes"] == {
        "alert_levels": {"before": [], "after": [50, 90]},
        "spend_cap": {"before": None, "after": 2550},
    }
    page = client.get(URL)
    assert "of your 25.50 USD cap" in text(page)
    # emptying both removes the cap and the levels
    client.post(URL, {"alert_levels": "", "spend_cap": ""})
    acme.refresh_from_db()
    assert (acme.alert_levels, acme.spend_cap) == ([], None)


def test_at_the_cap_the_page_says_overage_is_refused(client, acme, frozen):
    Company.objects.filter(pk=acme.pk).update(spend_cap=1500)
    assert "You are at your spend cap" in text(signed_in(client, acme.owner).get(URL))


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"alert_levels": "80, lots", "spend_cap": ""}, "alert_levels", "is not a whole percent"),
        ({"alert_levels": "0", "spend_cap": ""}, "alert_levels", "out of range"),
        ({"alert_levels": "", "spend_cap": "-1"}, "spend_cap", "greater than or equal to 0"),
        ({"alert_levels": "", "spend_cap": "ten"}, "spend_cap", "Enter a number"),
        ({"alert_levels": "", "spend_cap": "1.001"}, "spend_cap", "decimal places"),
    ],
)
def test_bad_input_is_a_form_error_naming_the_field_and_changes_nothing(client, acme, frozen, data, field, message):
    r = signed_in(client, acme.owner).post(URL, data)
    assert r.status_code == 400
    error = re.search(rf'id="{field}-error">(.*?)</p>', r.content.decode(), flags=re.S)
    assert error is not None and message in html_lib.unescape(error.group(1))
    acme.refresh_from_db()
    assert (acme.alert_levels, acme.spend_cap) == ([], None)
    assert not AuditLog.objects.filter(action="usage.alerts.update").exists()


def test_members_who_are_not_owners_may_not_see_or_change_it(client, acme, frozen):
    signed_in(client, acme.member)
    assert client.get(URL).status_code == 403
    assert client.post(URL, {"alert_levels": "10", "spend_cap": "1"}).status_code == 403
    acme.refresh_from_db()
    assert (acme.alert_levels, acme.spend_cap) == ([], None)
    assert "/account/alerts/" not in client.get("/account/?company=acme").content.decode()
