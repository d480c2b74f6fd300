"""Signing in from the frontend: CSRF, sessions, CORS, the lock on failed sign-ins, the
audit trail, password reset by e-mail and /me/. Real PostgreSQL and Redis; the browser's
side is played by Django's test client with CSRF checks on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import time_machine
from celery.contrib.testing.worker import start_worker
from django.core import mail
from django.core.cache import cache
from django.db import connection
from django.test import Client

from accounts.models import Company, Membership
from audit.models import AuditLog
from billing.plans.catalogue import install_default_catalogue
from billing.plans.models import Feature, Tier, TierLimit
from tests.own_redis import OwnRedis
from tests.waiting import until
from trans_bot.celery import app

CSRF = "/api/v1/auth/csrf/"
LOGIN = "/api/v1/auth/login/"
LOGOUT = "/api/v1/auth/logout/"
ME = "/api/v1/me/"
RESET = "/api/v1/auth/password-reset/"
RESET_CONFIRM = "/api/v1/auth/password-reset/confirm/"
APP = "https://app.example.com"
NOON = datetime(2031, 3, 4, 12, 0, 5, tzinfo=UTC)  # 5 s into a 15-minute window


@pytest.fixture(autouse=True)
def _no_failures_counted():
    """Redis outlives a test: every test starts with no failed sign-ins, known addresses or
    reset requests on record."""
    client = cache._cache.get_client(write=True)
    for pattern in ("signin-fail:*", "signin-known:*", "pwreset:*"):
        for key in client.scan_iter(match=cache.make_key(pattern)):
            client.delete(key)
    yield


@pytest.fixture
def nina(db, django_user_model):
    """A customer: owner at Acme Freight (Pro), plain member at Bolt Logistics (Starter)."""
    install_default_catalogue(Tier=Tier, Feature=Feature, TierLimit=TierLimit)
    user = django_user_model.objects.create_user(
        "nina", "nina@acme.example", "nina-Passw0rd-1", first_name="Nina", last_name="Novak"
    )
    acme = Company.objects.create(name="Acme Freight", slug="acme", tier=Tier.objects.get(code="pro"))
    bolt = Company.objects.create(name="Bolt Logistics", slug="bolt", tier=Tier.objects.get(code="starter"))
    Membership.objects.create(user=user, company=acme, role="owner")
    Membership.objects.create(user=user, company=bolt, role="member")
    return user


class Browser:
    """The frontend's side: fetch the CSRF token once, send it back on every POST."""

    def __init__(self, *, ip: str = "127.0.0.1", origin: str | None = None):
        self.client = Client(enforce_csrf_checks=True, REMOTE_ADDR=ip)
        self.origin = origin
        self.token = ""

    def headers(self) -> dict[str, str]:
        headers = {"X-CSRFToken": self.token} if self.token else {}
        if self.origin:
            headers["Origin"] = self.origin
        return headers

    def get(self, path: str):
        return self.client.get(path, headers=self.headers())

    def post(self, path: str, body: dict | None = None):
        return self.client.post(path, body or {}, content_type="application/json", headers=self.headers())

    def handshake(self) -> Browser:
        self.token = self.get(CSRF).json()["csrf_token"]
        return self

    def login(self, username: str, password: str):
        return self.post(LOGIN, {"username": username, "password": password})


def _error(response) -> dict:
    return response.json()["error"]


# --- The CSRF flow ---------------------------------------------------------------------


def test_signing_in_needs_the_csrf_token_and_then_the_session_works_for_me(nina):
    browser = Browser()
    refused = browser.login("nina", "nina-Passw0rd-1")
    assert refused.status_code == 403
    assert _error(refused)["code"] == "csrf_failed"
    assert "sessionid" not in refused.cookies

    csrf = browser.get(CSRF)
    assert csrf.status_code == 200 and "csrftoken" in csrf.cookies
    assert "no-cache" in csrf["Cache-Control"]
    browser.token = csrf.json()["csrf_token"]

    signed_in = browser.login("nina", "nina-Passw0rd-1")
    assert signed_in.status_code == 200, signed_in.content
    assert signed_in.cookies["sessionid"]["httponly"]
    assert signed_in.json()["user"]["username"] == "nina"
    new_token = signed_in.json()["csrf_token"]
    assert new_token and new_token != browser.token  # signing in rotates the CSRF secret

    me = browser.get(ME)
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "nina@acme.example"

    # The token from before the sign-in no longer goes with the cookie; the new one does.
    assert browser.post(LOGOUT).status_code == 403
    browser.token = new_token
    assert browser.post(LOGOUT).status_code == 204


def test_a_token_without_its_cookie_is_refused(nina):
    token = Browser().handshake().token
    stranger = Browser()  # another browser: no CSRF cookie
    stranger.token = token
    response = stranger.login("nina", "nina-Passw0rd-1")
    assert response.status_code == 403 and _error(response)["code"] == "csrf_failed"


def test_me_without_a_session_is_401_with_a_challenge(db):
    response = Browser().get(ME)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert _error(response)["code"] == "not_authenticated"


def test_me_lists_every_company_with_the_role_in_it(nina):
    browser = Browser().handshake()
    assert browser.login("nina", "nina-Passw0rd-1").status_code == 200
    me = browser.get(ME).json()
    assert me["user"] == {
        "id": nina.pk, "username": "nina", "email": "nina@acme.example",
        "first_name": "Nina", "last_name": "Novak", "is_staff": False,
    }
    assert me["companies"] == [
        {"id": Company.objects.get(slug="acme").pk, "slug": "acme", "name": "Acme Freight",
         "tier": {"code": "pro", "name": "Pro"}, "role": "owner"},
        {"id": Company.objects.get(slug="bolt").pk, "slug": "bolt", "name": "Bolt Logistics",
         "tier": {"code": "starter", "name": "Starter"}, "role": "member"},
    ]


def test_signing_out_ends_the_session_and_is_audited(nina):
    browser = Browser().handshake()
    browser.token = browser.login("nina", "nina-Passw0rd-1").json()["csrf_token"]
    assert browser.post(LOGOUT).status_code == 204
    assert browser.get(ME).status_code == 401
    log = AuditLog.objects.get(action="auth.logout")
    assert (log.actor_label, log.target_id) == ("nina", str(nina.pk))
    assert browser.post(LOGOUT).status_code == 204  # signed out already: nothing to do, no error


# --- Bad credentials -------------------------------------------------------------------


def test_bad_credentials_are_a_400_naming_the_password_whether_or_not_the_username_exists(nina):
    browser = Browser().handshake()
    wrong_password = browser.login("nina", "not-her-password")
    no_such_user = browser.login("nobody", "not-her-password")
    wrong_case = browser.login("Nina", "nina-Passw0rd-1")
    assert wrong_password.status_code == no_such_user.status_code == wrong_case.status_code == 400
    assert _error(wrong_password) == _error(no_such_user) == _error(wrong_case)
    assert _error(wrong_password)["fields"] == [
        {
            "field": "password",
            "code": "invalid_login",
            "message": "The username and password do not match an account. Both are case-sensitive.",
        }
    ]
    assert browser.get(ME).status_code == 401


def test_a_deactivated_account_cannot_sign_in_and_says_so_no_differently(nina):
    nina.is_active = False
    nina.save()
    browser = Browser().handshake()
    response = browser.login("nina", "nina-Passw0rd-1")
    assert response.status_code == 400
    assert _error(response)["fields"][0]["code"] == "invalid_login"


def test_missing_fields_are_named(db):
    response = Browser().handshake().post(LOGIN, {"username": "nina"})
    assert response.status_code == 400
    assert [f["field"] for f in _error(response)["fields"]] == ["password"]
    assert _error(response)["fields"][0]["code"] == "required"


def test_a_failed_sign_in_is_audited_as_a_failed_admin_login_is(nina):
    browser = Browser(ip="203.0.113.7").handshake()
    response = browser.login("nina", "guess-1")
    log = AuditLog.objects.get(action="auth.login_failed")
    assert (log.actor_type, log.actor_label, log.actor_user_id) == ("external", "nina", None)
    assert (log.target_type, log.target_repr) == ("auth.user", "nina")
    assert log.ip == "203.0.113.7" and log.request_id == response["X-Request-ID"]
    assert "guess-1" not in str(log.details)
    browser.login("nina", "nina-Passw0rd-1")
    assert AuditLog.objects.get(action="auth.login").actor_user_id == nina.pk


# --- The lock on failed sign-ins -------------------------------------------------------


def test_a_username_is_locked_after_its_failures_even_for_the_right_password_until_the_window_ends(
    nina, settings
):
    """Decision: while locked, the password is not checked at all, so the right one gets
    429 too (a different answer would tell a guesser they hit it). The lock ends with the
    window; then the right password works again."""
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 900
    with time_machine.travel(NOON, tick=False) as clock:
        for n in range(3):  # from three addresses: the username's own count locks it
            assert Browser(ip=f"198.51.100.{n}").handshake().login("nina", f"guess-{n}").status_code == 400
        browser = Browser(ip="198.51.100.99").handshake()
        locked = browser.login("nina", "nina-Passw0rd-1")
        assert locked.status_code == 429
        assert _error(locked)["code"] == "throttled"
        assert locked["Retry-After"] == str(900 - 5)
        assert browser.get(ME).status_code == 401
        assert AuditLog.objects.filter(action="auth.login_failed").count() == 3  # the refusal checked nothing
        lock = AuditLog.objects.get(action="auth.login_locked")
        assert lock.actor_label == "nina" and lock.details == {"locked": ["username"], "seconds": 895}

        other = Browser(ip="198.51.100.99").handshake()
        assert other.login("someone-else", "x").status_code == 400  # the address is not locked

        clock.move_to(NOON + timedelta(seconds=900))
        assert browser.handshake().login("nina", "nina-Passw0rd-1").status_code == 200


def test_failing_on_purpose_elsewhere_does_not_keep_a_user_out_of_an_address_they_signed_in_from(
    nina, settings
):
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    with time_machine.travel(NOON, tick=False):
        assert Browser(ip="198.51.100.20").handshake().login("nina", "nina-Passw0rd-1").status_code == 200
        for n in range(3):
            assert Browser(ip=f"192.0.2.{n}").handshake().login("nina", f"guess-{n}").status_code == 400

        elsewhere = Browser(ip="192.0.2.9").handshake().login("nina", "nina-Passw0rd-1")
        at_home = Browser(ip="198.51.100.20").handshake().login("nina", "nina-Passw0rd-1")

    assert elsewhere.status_code == 429  # the username is locked for addresses it never signed in from
    assert at_home.status_code == 200


def test_guesses_from_a_known_address_are_limited_at_that_address(nina, settings):
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    with time_machine.travel(NOON, tick=False):
        assert Browser(ip="198.51.100.21").handshake().login("nina", "nina-Passw0rd-1").status_code == 200
        guesser = Browser(ip="198.51.100.21").handshake()
        codes = [guesser.login("nina", f"guess-{n}").status_code for n in range(3)]
        right_password_there = guesser.login("nina", "nina-Passw0rd-1")
        elsewhere = Browser(ip="192.0.2.40").handshake().login("nina", "nina-Passw0rd-1")

    assert codes == [400, 400, 400] and right_password_there.status_code == 429
    lock = AuditLog.objects.get(action="auth.login_locked")
    assert lock.details["locked"] == ["username at a known address"]
    assert elsewhere.status_code == 200  # those failures did not lock the username everywhere


def test_an_address_is_locked_after_its_failures_whatever_the_username(nina, settings):
    settings.LOGIN_FAILURES_PER_IP = 3
    with time_machine.travel(NOON, tick=False):
        attacker = Browser(ip="192.0.2.66").handshake()
        for name in ("alice", "bob", "carol"):
            assert attacker.login(name, "password1").status_code == 400
        locked = attacker.login("nina", "nina-Passw0rd-1")
        assert locked.status_code == 429 and int(locked["Retry-After"]) > 0
        assert AuditLog.objects.get(action="auth.login_locked").details["locked"] == ["ip"]
        assert Browser(ip="192.0.2.67").handshake().login("nina", "nina-Passw0rd-1").status_code == 200


def test_a_successful_sign_in_clears_the_usernames_failures(nina, settings):
    settings.LOGIN_FAILURES_PER_USERNAME = 3
    with time_machine.travel(NOON, tick=False):
        browser = Browser().handshake()
        for _ in range(2):
            assert browser.login("nina", "typo").status_code == 400
        signed_in = browser.login("nina", "nina-Passw0rd-1")
        assert signed_in.status_code == 200
        browser.token = signed_in.json()["csrf_token"]
        for _ in range(2):
            assert browser.login("nina", "typo").status_code == 400
        assert browser.login("nina", "nina-Passw0rd-1").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_parallel_guesses_cannot_overshoot_the_limit(settings):
    """Each attempt is counted before its password is checked: of ten guesses sent at once,
    only as many as the limit allows are checked."""
    settings.LOGIN_FAILURES_PER_USERNAME = 3

    def guess(n: int) -> int:
        try:
            return Browser(ip=f"203.0.113.{n}").handshake().login("nina", f"guess-{n}").status_code
        finally:
            connection.close()

    with time_machine.travel(NOON, tick=False), ThreadPoolExecutor(max_workers=10) as pool:
        answers = sorted(pool.map(guess, range(10)))
    assert answers == [400] * 3 + [429] * 7
    assert AuditLog.objects.filter(action="auth.login_failed").count() == 3


# --- CORS: configured origins only -----------------------------------------------------


def test_only_a_listed_origin_gets_cors_headers_and_may_sign_in(nina, settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]
    settings.CSRF_TRUSTED_ORIGINS = [APP]

    app = Browser(origin=APP)
    csrf = app.get(CSRF)
    assert csrf["Access-Control-Allow-Origin"] == APP
    assert csrf["Access-Control-Allow-Credentials"] == "true"
    assert "Retry-After" in csrf["Access-Control-Expose-Headers"]
    app.token = csrf.json()["csrf_token"]
    assert app.login("nina", "nina-Passw0rd-1").status_code == 200

    evil = Browser(origin="https://evil.example")
    refused = evil.get(CSRF)
    assert "Access-Control-Allow-Origin" not in refused  # the browser will not hand the answer over
    evil.token = refused.json()["csrf_token"]  # even a token obtained some other way...
    forged = evil.login("nina", "nina-Passw0rd-1")
    assert forged.status_code == 403 and "Origin checking failed" in _error(forged)["message"]

    preflight = Client().options(
        LOGIN, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in preflight
    asks = {"Origin": APP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-csrftoken"}
    preflight = Client().options(LOGIN, headers=asks)
    assert preflight["Access-Control-Allow-Origin"] == APP
    assert "x-csrftoken" in preflight["Access-Control-Allow-Headers"]


def test_no_origin_gets_cors_headers_by_default(db):
    response = Browser(origin="http://localhost:5173").get(CSRF)
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response


def test_the_frontends_origins_are_trusted_for_csrf_too(tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "VAR_DIR": str(tmp_path / "var"),
        "CORS_ALLOWED_ORIGINS": f"{APP},https://staging.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://backoffice.example.com",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings as s; "
         "print(s.CORS_ALLOWED_ORIGINS); print(s.CSRF_TRUSTED_ORIGINS)"],
        cwd=root, env={**env, "DJANGO_SETTINGS_MODULE": "trans_bot.settings"},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"['{APP}', 'https://staging.example.com']",
        f"['https://backoffice.example.com', '{APP}', 'https://staging.example.com']",
    ]


# --- Password reset by e-mail ----------------------------------------------------------


def _link_parts(text: str) -> tuple[str, str, str]:
    """The reset link in an e-mail, and the uid and token in its path."""
    match = re.search(r"(http\S+/reset/([^/\s]+)/([^/\s]+)/)", text)
    assert match, text
    return match.group(1), match.group(2), match.group(3)


@pytest.mark.django_db(transaction=True)
def test_a_reset_e_mail_is_sent_only_to_a_known_address_and_its_link_sets_a_new_password(nina, settings):
    settings.SITE_URL = "https://backoffice.example.com"
    mail.outbox.clear()
    app.control.purge()
    browser = Browser().handshake()
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING"):
        unknown = browser.post(RESET, {"email": "nobody@acme.example"})
        known = browser.post(RESET, {"email": "NINA@acme.example"})
        assert unknown.status_code == known.status_code == 202
        assert unknown.json() == known.json()
        assert until(lambda: len(mail.outbox) >= 1), "the worker sent no reset e-mail"
    assert [m.to for m in mail.outbox] == [["nina@acme.example"]]  # the unknown address got nothing
    link, uid, token = _link_parts(mail.outbox[0].body)
    assert link.startswith("https://backoffice.example.com/reset/")
    assert AuditLog.objects.get(action="auth.user.password_reset_sent").target_id == str(nina.pk)

    weak = browser.post(RESET_CONFIRM, {"uid": uid, "token": token, "new_password": "nina"})
    assert weak.status_code == 400
    assert {f["field"] for f in _error(weak)["fields"]} == {"new_password"}
    assert "password_too_short" in {f["code"] for f in _error(weak)["fields"]}

    done = browser.post(RESET_CONFIRM, {"uid": uid, "token": token, "new_password": "a-New-Passw0rd-2"})
    assert done.status_code == 200, done.content
    again = browser.post(RESET_CONFIRM, {"uid": uid, "token": token, "new_password": "another-Passw0rd-3"})
    assert again.status_code == 400 and _error(again)["fields"][0]["field"] == "token"  # the link works once

    assert browser.login("nina", "nina-Passw0rd-1").status_code == 400
    assert browser.login("nina", "a-New-Passw0rd-2").status_code == 200
    log = AuditLog.objects.get(action="auth.user.password_reset")
    assert (log.actor_type, log.actor_label, log.target_id) == ("user", "nina", str(nina.pk))
    assert not AuditLog.objects.filter(action="auth.user.password_change").exists()


def test_a_malformed_address_is_named_and_a_bogus_link_is_refused(nina):
    browser = Browser().handshake()
    bad = browser.post(RESET, {"email": "not-an-address"})
    assert bad.status_code == 400 and _error(bad)["fields"][0]["field"] == "email"
    for uid, token in [("MQ", "bogus-token"), ("!!", "x"), ("OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "x")]:
        refused = browser.post(RESET_CONFIRM, {"uid": uid, "token": token, "new_password": "a-New-Passw0rd-2"})
        assert refused.status_code == 400
        assert _error(refused)["fields"][0] == {
            "field": "token",
            "code": "invalid_link",
            "message": "This reset link is invalid, expired or already used: ask for a new one.",
        }


def test_reset_e_mails_are_limited_per_address_asked_for_known_or_not(
    nina, settings, django_capture_on_commit_callbacks
):
    """Nobody can fill a mailbox through the reset form, and the limit tells nothing about
    which addresses have accounts: an unknown address is limited exactly as a known one."""
    settings.PASSWORD_RESET_PER_EMAIL = 2
    with time_machine.travel(NOON, tick=False), django_capture_on_commit_callbacks() as queued:
        answers = {
            email: [Browser(ip=f"192.0.2.{n}{i}").handshake().post(RESET, {"email": email}) for i in range(3)]
            for n, email in enumerate(["NINA@acme.example", "nobody@acme.example"], start=1)
        }
        other = Browser(ip="192.0.2.30").handshake().post(RESET, {"email": "someone@acme.example"})

    for email, (first, second, third) in answers.items():
        assert (first.status_code, second.status_code, third.status_code) == (202, 202, 429), email
        assert int(third["Retry-After"]) > 0
        assert _error(third)["code"] == "throttled"
    assert answers["NINA@acme.example"][2].json() == answers["nobody@acme.example"][2].json()
    assert other.status_code == 202
    assert len(queued) == 2  # two e-mails queued for Nina, none for the refused request


def test_reset_requests_are_limited_per_client_address(nina, settings):
    settings.PASSWORD_RESET_PER_IP = 3
    with time_machine.travel(NOON, tick=False):
        flooder = Browser(ip="203.0.113.50").handshake()
        codes = [flooder.post(RESET, {"email": f"victim{i}@example.com"}).status_code for i in range(4)]
        elsewhere = Browser(ip="203.0.113.51").handshake().post(RESET, {"email": "nina@acme.example"})
    assert codes == [202, 202, 202, 429]
    assert elsewhere.status_code == 202


def test_with_redis_down_the_reset_form_is_a_503_not_an_unlimited_mailer(
    nina, settings, django_capture_on_commit_callbacks
):
    browser = Browser().handshake()
    with OwnRedis() as redis, django_capture_on_commit_callbacks() as queued:
        settings.CACHES = redis.caches()
        redis.stop()
        down = browser.post(RESET, {"email": "nina@acme.example"})
    assert down.status_code == 503 and int(down["Retry-After"]) > 0
    assert _error(down)["code"] == "cache_unavailable"
    assert not queued


def test_a_reset_needs_the_csrf_token(nina):
    assert Browser().post(RESET, {"email": "nina@acme.example"}).status_code == 403


def test_a_reset_unlocks_the_username_and_ends_its_sessions(nina, settings):
    from accounts.password_reset import password_reset_link

    settings.LOGIN_FAILURES_PER_USERNAME = 2
    signed_in = Browser().handshake()
    assert signed_in.login("nina", "nina-Passw0rd-1").status_code == 200
    with time_machine.travel(NOON, tick=False):
        attacker = Browser(ip="192.0.2.1").handshake()
        for _ in range(2):
            attacker.login("nina", "guess")
        # Locked for an address Nina never signed in from (127.0.0.1 she did: not held there).
        assert Browser(ip="192.0.2.2").handshake().login("nina", "nina-Passw0rd-1").status_code == 429

        nina.refresh_from_db()  # the token covers last_login, which signing in changed
        _, uid, token = _link_parts(password_reset_link(nina))
        browser = Browser(ip="192.0.2.2").handshake()
        reset = browser.post(RESET_CONFIRM, {"uid": uid, "token": token, "new_password": "a-New-Passw0rd-2"})
        assert reset.status_code == 200
        assert browser.login("nina", "a-New-Passw0rd-2").status_code == 200
    assert signed_in.get(ME).status_code == 401  # the session from before the reset is over


def test_the_e_mailed_link_opens_a_page_that_sets_the_password_and_is_audited_as_a_reset(nina):
    from accounts.password_reset import password_reset_link

    link = password_reset_link(nina)
    page = Client(enforce_csrf_checks=True)
    opened = page.get(urlsplit(link).path, follow=True)
    assert opened.status_code == 200
    assert b"new_password1" in opened.content
    form_url = opened.redirect_chain[-1][0]
    token = opened.cookies["csrftoken"].value
    saved = page.post(
        form_url,
        {"new_password1": "a-New-Passw0rd-2", "new_password2": "a-New-Passw0rd-2", "csrfmiddlewaretoken": token},
    )
    assert saved.status_code == 302 and saved["Location"] == "/reset/done/"
    nina.refresh_from_db()
    assert nina.check_password("a-New-Passw0rd-2")
    assert AuditLog.objects.get(action="auth.user.password_reset").actor_label == "nina"
    assert not AuditLog.objects.filter(action="auth.user.password_change").exists()
