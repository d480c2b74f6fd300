"""The account pages through the Django client: who sees what, and the numbers on them."""

from __future__ import annotations

import csv
import html as html_lib
import io
import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.cache import cache

from accounts.models import CompanyAPIKey, Membership
from accounts.services import company_set_tier
from audit.models import AuditLog
from audit.services import Actor
from billing.plans.models import Tier
from billing.stripe.models import BillingEvent, BillingEventKind, BillingEventStatus
from tests.customers.conftest import NOW, PASSWORD, set_usage

pytestmark = pytest.mark.django_db


def signed_in(client, user):
    client.force_login(user)
    return client


def text(response) -> str:
    """The page's text, tags dropped and whitespace folded, as a reader sees it."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip())


# --- Getting in ---------------------------------------------------------------------------


def test_home_sends_a_member_to_the_account_and_anyone_else_to_sign_in(client, acme, outsider):
    assert client.get("/").url == "/login/"
    assert signed_in(client, outsider).get("/").url == "/login/"
    assert signed_in(client, acme.member).get("/").url == "/account/"


def test_account_pages_ask_for_a_sign_in(client, acme):
    for path in ["/account/", "/account/plans/", "/account/history/", "/account/history.csv", "/account/api-keys/"]:
        r = client.get(path)
        assert (r.status_code, r.url) == (302, f"/login/?next={path}"), path


def test_a_member_signs_in_with_the_login_page(client, acme):
    page = client.get("/login/")
    assert '<label for="id_username">' in page.content.decode()
    assert '<label for="id_password">' in page.content.decode()
    r = client.post("/login/", {"username": "mike", "password": PASSWORD})
    assert (r.status_code, r.url) == (302, "/account/")
    assert client.get("/account/").status_code == 200
    assert AuditLog.objects.filter(action="auth.login", actor_label="mike").count() == 1


def test_a_wrong_password_is_refused_and_repeated_failures_lock_the_username(client, acme, settings):
    cache.clear()  # failure counters outlive a test (Redis)
    settings.LOGIN_FAILURES_PER_USERNAME = 2
    for _ in range(2):
        r = client.post("/login/", {"username": "mike", "password": "wrong"})
        assert r.status_code == 200 and "Please enter a correct username and password" in text(r)
    locked = client.post("/login/", {"username": "mike", "password": PASSWORD})
    assert locked.status_code == 200
    assert re.search(r"Too many failed sign-ins\. Try again in \d+ minutes?\.", text(locked))
    assert "_auth_user_id" not in client.session


def test_signing_out_ends_the_session(client, acme):
    signed_in(client, acme.member)
    assert client.post("/logout/").url == "/login/"
    assert client.get("/account/").status_code == 302


# --- Usage ------------------------------------------------------------------------------------


def test_the_usage_page_shows_each_limit_as_a_bar_with_its_level(client, acme, frozen):
    r = signed_in(client, acme.member).get("/account/")
    html = r.content.decode()
    bars = re.findall(r'<article class="meter (\w+)" data-feature="(\w+)">.*?aria-valuenow="([\d.]+)"', html, re.S)
    assert bars == [("ok", "quotes", "42"), ("warning", "bulk_jobs", "87"), ("exceeded", "directory_invites", "124")]
    page = text(r)
    assert "4,200 of 10,000 quotes · 42 %" in page
    assert "1 Jan 2027 – 31 Jan 2027 · 28 days left · plan Pro (199.00 USD a month)" in page


def test_the_warning_and_over_limit_banners_say_what_it_costs_and_what_to_do(client, acme, frozen):
    page = text(signed_in(client, acme.member).get("/account/"))
    warning = page.split("Close to your limit")[1]
    assert "Bulk jobs is at 87 % (87 of 100 jobs). Beyond the limit, each job is billed at 1.00 USD" in warning
    over = page.split("Over your limit")[1].split("Close to your limit")[0]
    assert "Directory invites : 310 of 250 invites (124 %)." in over
    assert "Each invite beyond 250 is billed at 0.25 USD: 15.00 USD so far" in over
    assert "Enterprise would cost less for this period" in over
    assert "ask an owner to change the plan" in over


def test_the_page_shows_the_projection_and_the_money(client, acme, frozen):
    page = text(signed_in(client, acme.owner).get("/account/"))
    # 3 days of 31 gone: usage × 31/3. Invites: 310 → 3,203 (2,953 over × 0.25 USD).
    assert "Projected by 31 Jan: 3,203 (2,953 over, 738.25 USD)" in page
    assert "Overage so far 15.00 USD" in page
    assert "Enterprise is the cheapest plan for your projected usage this period: 999.00 USD" in page


def test_an_unlimited_feature_is_shown_as_unlimited(client, acme, frozen):
    acme.tier = Tier.objects.get(code="enterprise")
    acme.save()
    r = signed_in(client, acme.member).get("/account/")
    assert "310 invites used · Unlimited on Enterprise" in text(r)
    assert r.content.decode().count('role="progressbar"') == 2


# --- Plans ------------------------------------------------------------------------------------


def plan_cards(response) -> dict[str, str]:
    html = response.content.decode()
    cards = re.findall(r'<article class="plan[^"]*" data-tier="(\w+)">(.*?)</article>', html, re.S)
    return {code: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)).strip() for code, body in cards}


def test_the_plan_table_prices_the_projection_on_every_tier_and_recommends_the_cheapest(client, acme, frozen):
    r = signed_in(client, acme.member).get("/account/plans/")
    cards = plan_cards(r)
    assert list(cards) == ["starter", "pro", "enterprise"]
    assert "Your plan" in cards["pro"] and "Recommended" not in cards["pro"]
    assert "Recommended" in cards["enterprise"] and "999.00 USD a month" in cards["enterprise"]
    assert "This period for you: 999.00 USD" in cards["enterprise"]
    assert "Quotes 10,000 included, then 0.03 USD per quote" in cards["pro"]
    assert "Directory invites Unlimited" in cards["enterprise"]
    assert "Recommended: Enterprise." in text(r)


def test_a_plain_member_sees_the_owners_and_no_buttons(client, acme):
    r = signed_in(client, acme.member).get("/account/plans/")
    page = text(r)
    assert "Olga Owner · olga@example.com" in page
    assert "Upgrade to" not in page and "billing portal" not in page
    change = client.post("/account/plans/change/?company=acme", {"tier": "enterprise"})
    assert change.status_code == 403
    assert client.post("/account/billing-portal/?company=acme").status_code == 403


def test_an_owner_gets_upgrade_buttons_and_the_billing_portal(client, acme):
    page = text(signed_in(client, acme.owner).get("/account/plans/"))
    assert "Upgrade to Enterprise" in page and "Switch to Starter" in page
    assert "Payment methods and invoices (Stripe billing portal)" in page


def test_the_upgrade_button_starts_stripe_checkout(client, acme, fake_stripe):
    r = signed_in(client, acme.owner).post("/account/plans/change/?company=acme", {"tier": "enterprise"})
    assert r.status_code == 302 and r.url.startswith("https://checkout.stripe.com/c/pay/")
    (session,) = fake_stripe.checkout_sessions.values()
    assert r.url == session["url"] and session["metadata"]["tier"] == "enterprise"
    assert BillingEvent.objects.get(kind=BillingEventKind.UPGRADE).company == acme


def test_a_refused_downgrade_is_explained_on_the_page(client, acme, fake_stripe, frozen):
    r = signed_in(client, acme.owner).post("/account/plans/change/?company=acme", {"tier": "starter"}, follow=True)
    assert "This period's usage is above what Starter includes" in text(r)
    assert fake_stripe.requests == []


def test_the_portal_link_opens_a_stripe_billing_portal_session(client, acme, fake_stripe):
    r = signed_in(client, acme.owner).post("/account/billing-portal/?company=acme")
    assert r.status_code == 302 and r.url.startswith("https://billing.stripe.com/p/session/")
    assert AuditLog.objects.filter(action="billing.portal.open", company_id=acme.pk).exists()


# --- History ----------------------------------------------------------------------------------


@pytest.fixture
def past(acme):
    """December 2026 on Starter (1,500 quotes, 12.50 USD overage billed), moved to Pro on 20 Dec."""
    dec = datetime(2026, 12, 10, tzinfo=UTC)
    set_usage(acme, "quotes", 1_500, at=dec)
    BillingEvent.objects.create(
        kind=BillingEventKind.OVERAGE, status=BillingEventStatus.SENT, company=acme,
        period_start=datetime(2026, 12, 1, tzinfo=UTC), units=250, amount=1_250, currency="USD",
        identifier="tb-h-1", sequence=1, created_at=dec,
    )
    with time_machine.travel(datetime(2026, 11, 5, tzinfo=UTC), tick=False):
        company_set_tier(company=acme, tier=Tier.objects.get(code="starter"), actor=Actor.system("test"))
    with time_machine.travel(datetime(2026, 12, 20, tzinfo=UTC), tick=False):
        company_set_tier(company=acme, tier=Tier.objects.get(code="pro"), actor=Actor.system("test"))


def test_history_lists_twelve_periods_with_usage_overage_and_tier(client, acme, past, frozen):
    r = signed_in(client, acme.member).get("/account/history/")
    rows = re.findall(r"<tr[^>]*>\s*<th scope=\"row\">(.*?)</tr>", r.content.decode(), re.S)
    assert len(rows) == 12
    flat = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in rows]
    assert flat[0] == "1 Jan 2027 – 31 Jan 2027 now Pro 4,200 87 310 0.00 USD"
    assert flat[1] == "1 Dec 2026 – 31 Dec 2026 Starter → Pro 1,500 0 0 12.50 USD"
    assert flat[2].startswith("1 Nov 2026 – 30 Nov 2026 Pro → Starter")
    assert flat[3].startswith("1 Oct 2026 – 31 Oct 2026 Pro 0 0 0")


def test_history_downloads_as_csv(client, acme, past, frozen):
    r = signed_in(client, acme.member).get("/account/history.csv")
    assert r["Content-Type"] == "text/csv; charset=utf-8"
    assert r["Content-Disposition"] == 'attachment; filename="acme-usage-history.csv"'
    rows = list(csv.reader(io.StringIO(r.content.decode())))
    assert rows[0] == [
        "period_start", "period_end", "tier", "quotes", "bulk_jobs", "directory_invites", "overage_billed", "currency",
    ]
    assert rows[1] == ["2027-01-01", "2027-02-01", "Pro", "4200", "87", "310", "0.00", "USD"]
    assert rows[2] == ["2026-12-01", "2027-01-01", "Starter → Pro", "1500", "0", "0", "12.50", "USD"]
    assert len(rows) == 13


# --- API keys ---------------------------------------------------------------------------------


def test_an_owner_creates_a_key_sees_its_secret_once_and_revokes_it(client, acme):
    signed_in(client, acme.owner)
    r = client.post("/account/api-keys/?company=acme", {"name": "production backend"})
    assert r.status_code == 200
    secret = re.search(r'id="new-secret"[^>]*value="([^"]+)"', r.content.decode()).group(1)
    key = CompanyAPIKey.objects.get(company=acme)
    assert secret.startswith(key.prefix + ".") and key.is_valid(secret)
    listing = client.get("/account/api-keys/")
    assert secret not in listing.content.decode()
    assert f"{key.prefix} production backend" in text(listing) and "never Active" in text(listing)

    revoked = client.post(f"/account/api-keys/{key.prefix}/revoke/?company=acme", follow=True)
    assert f"Key {key.prefix} (production backend) is revoked" in text(revoked)
    key.refresh_from_db()
    assert key.revoked
    actions = list(AuditLog.objects.filter(company_id=acme.pk, action__startswith="billing.api_key").values_list(
        "action", "actor_label").order_by("seq"))
    assert actions == [("billing.api_key.create", "olga"), ("billing.api_key.revoke", "olga")]


def test_a_key_needs_a_name(client, acme):
    r = signed_in(client, acme.owner).post("/account/api-keys/?company=acme", {"name": ""})
    assert r.status_code == 400 and "This field is required." in text(r)
    assert not CompanyAPIKey.objects.exists()


def test_plain_members_do_not_manage_keys(client, acme):
    _, secret = CompanyAPIKey.objects.create_key(company=acme, name="k")
    key = CompanyAPIKey.objects.get()
    signed_in(client, acme.member)
    assert "API keys" not in text(client.get("/account/"))
    assert client.get("/account/api-keys/").status_code == 403
    assert client.post(f"/account/api-keys/{key.prefix}/revoke/").status_code == 403
    key.refresh_from_db()
    assert not key.revoked


# --- Tenancy ----------------------------------------------------------------------------------


def test_a_member_of_one_company_gets_404_for_anything_of_another(client, acme, globex):
    _, secret = CompanyAPIKey.objects.create_key(company=globex, name="globex backend")
    globex_key = CompanyAPIKey.objects.get(company=globex)
    signed_in(client, acme.owner)
    for path in ["/account/", "/account/plans/", "/account/history/", "/account/history.csv",
                 "/account/api-keys/", "/pricing/"]:
        assert client.get(f"{path}?company=globex").status_code == 404, path
        assert client.get(f"{path}?company={globex.pk}").status_code == 404, path
    for path in ["/account/plans/change/", "/account/billing-portal/", "/account/api-keys/"]:
        assert client.post(f"{path}?company=globex", {"tier": "pro", "name": "x"}).status_code == 404, path
    assert client.post(f"/account/api-keys/{globex_key.prefix}/revoke/").status_code == 404
    assert client.post(f"/account/api-keys/{globex_key.prefix}/revoke/?company=globex").status_code == 404
    globex_key.refresh_from_db()
    assert not globex_key.revoked and CompanyAPIKey.objects.filter(company=globex).count() == 1


def test_someone_in_two_companies_picks_one(client, acme, globex):
    Membership.objects.create(user=acme.member, company=globex, role="member")
    signed_in(client, acme.member)
    picker = client.get("/account/history/")
    assert picker.status_code == 200 and "Choose a company" in text(picker)
    assert 'href="/account/history/?company=globex"' in picker.content.decode()
    assert "Globex Logistics" in text(client.get("/account/?company=globex"))
    assert "Acme Freight" in text(client.get("/account/?company=acme"))


def test_signed_in_without_a_company_the_account_is_404(client, outsider):
    assert signed_in(client, outsider).get("/account/").status_code == 404


# --- Calculator -------------------------------------------------------------------------------


def test_the_calculator_is_public_and_prices_every_tier(client, stripe_catalogue):
    r = client.get("/pricing/", {"quotes": "5000", "bulk_jobs": "12", "directory_invites": "0"})
    assert r.status_code == 200
    page = text(r)
    assert "Pro is the cheapest plan for this usage: 199.00 USD, 54.00 USD less than Starter (253.00 USD)." in page
    assert "Starter 49.00 USD 204.00 USD 253.00 USD 54.00 USD more" in page
    assert "Pro Cheapest 199.00 USD 0.00 USD 199.00 USD —" in page
    html = r.content.decode()
    for code in ["quotes", "bulk_jobs", "directory_invites"]:
        assert f'<label for="id_{code}">' in html


def test_the_calculator_names_a_bad_field(client, stripe_catalogue):
    r = client.get("/pricing/", {"quotes": "-3", "bulk_jobs": "1"})
    assert r.status_code == 400
    assert "Ensure this value is greater than or equal to 0." in text(r)
    assert 'id="quote"' not in r.content.decode()


def test_inside_the_account_the_calculator_starts_from_the_projection(client, acme, frozen):
    r = signed_in(client, acme.member).get("/pricing/")
    html = r.content.decode()
    assert "Filled in with Acme Freight's projection for this period." in text(r)
    assert re.search(r'name="directory_invites" value="3203"', html)
    assert "Enterprise" in re.search(r'<tr data-tier="(\w+)" class="recommended"', html).group(1).title()


# --- E-mails ----------------------------------------------------------------------------------


def test_the_owners_usage_email_links_to_the_usage_page(client, acme, settings):
    from ops.messages import email_message
    from ops.models import Notification
    from usage.monitor import usage_monitor_run

    settings.SITE_URL = "https://backoffice.example.com"
    with time_machine.travel(NOW.replace(hour=2), tick=False):
        usage_monitor_run()
    mails = Notification.objects.filter(company=acme, email_to=["olga@example.com"]).order_by("kind")
    assert [m.kind for m in mails] == ["usage.breach", "usage.warning"]  # invites over, bulk jobs at 87 %
    for mail in mails:
        _, body = email_message(mail)
        assert "See your usage and compare plans: https://backoffice.example.com/account/?company=acme" in body
    assert signed_in(client, acme.owner).get("/account/?company=acme").status_code == 200
