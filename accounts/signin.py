"""Signing in and out with a session cookie: the frontend's way in (see the README,
"Signing in from the frontend").

Django's ``authenticate`` and ``login`` do the work, so a failed sign-in reaches the audit
trail exactly as a failed admin login does (``user_login_failed``), and a success as
``auth.login``. What is added here is the lock on repeated failures (``accounts.throttles``).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest

from accounts.throttles import SignInAttempt, sign_in_attempt_begin, sign_in_attempt_succeeded
from audit.services import Actor, Target, audit_record
from core.middleware import client_ip


def user_sign_in(*, request: HttpRequest, username: str, password: str) -> AbstractBaseUser | None:
    """Sign the user in on this request's session, or return None when the username and
    password do not match an active account; whether the username exists is never told.
    Raises ``SignInLocked`` (before the password is checked) after too many failures for
    this username or from this address (from an address the username signed in from
    lately, for this username at this address: ``accounts.throttles``)."""
    ip = client_ip(request)
    attempt = sign_in_attempt_begin(ip=ip, username=username)
    user = authenticate(request, username=username, password=password)
    if user is None:
        if attempt.locks_if_it_fails:
            _audit_lock(attempt=attempt, username=username)
        return None
    sign_in_attempt_succeeded(attempt, ip=ip, username=username)
    login(request, user)
    return user


def user_sign_out(*, request: HttpRequest) -> None:
    """End the session (audited as ``auth.logout`` when someone was signed in)."""
    logout(request)


def _audit_lock(*, attempt: SignInAttempt, username: str) -> None:
    """Once per lock: the failure that used up the last try (each failure is audited too)."""
    locked = []
    if attempt.username_count == settings.LOGIN_FAILURES_PER_USERNAME:
        locked.append("username at a known address" if attempt.known_address else "username")
    if attempt.ip_count == settings.LOGIN_FAILURES_PER_IP:
        locked.append("ip")
    audit_record(
        action="auth.login_locked",
        actor=Actor.external(username[:150] or "unknown"),
        target=Target(type="auth.user", repr=username[:150]),
        details={"locked": locked, "seconds": attempt.window_ends_in},
    )
