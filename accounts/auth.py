"""How the product backend authenticates: ``Authorization: Api-Key <prefix>.<secret>``.

The key resolves the company; everything the request does is scoped to it. Keys (with
their company and tier) are kept in this process's memory (``core.hotcache``): a request
with a known key costs no query, and revoking a key, changing a company or its tier is
seen by every process within a second.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request
from rest_framework.views import APIView
from rest_framework_api_key.permissions import KeyParser

from accounts.models import Company, CompanyAPIKey
from billing.plans.models import Tier
from core import hotcache
from core.middleware import client_ip
from core.outages import CACHE_ERRORS, Degraded

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema

_lockout_degraded = Degraded(
    "API-key lockout: Redis unreachable, failed attempts not counted", logging.getLogger(__name__)
)

# Recording every use would be a write per request; once a minute is enough to answer
# "is this key still in use?".
LAST_USED_RESOLUTION = timedelta(minutes=1)

# Shared by every request of this process until invalidated: read them, never change them.
_keys: hotcache.HotCache[CompanyAPIKey] = hotcache.HotCache("api keys", depends_on=(CompanyAPIKey, Company, Tier))


def api_key_failure_key(address: str | None, window: int) -> str:
    """The cache key counting failed API-key attempts from ``address`` in ``window``."""
    return f"apikey-fail:{address or 'unknown'}:{window}"


def _load_key(prefix: str) -> CompanyAPIKey | None:
    return (
        CompanyAPIKey.objects.select_related("company", "company__tier")
        .filter(prefix=prefix, revoked=False)
        .first()
    )


def api_key_known(raw: str) -> bool:
    """Whether this process holds the key ``raw`` names (then checking it costs no query)."""
    return _keys.peek(raw.partition(".")[0]) is not None


def api_key_check(raw: str) -> CompanyAPIKey | None:
    """The valid, unrevoked, unexpired key ``raw`` (``<prefix>.<secret>``) is, with its
    company and tier; None when there is none. No failure is counted here."""
    prefix = raw.partition(".")[0]
    key = _keys.get(prefix, lambda: _load_key(prefix))
    if key is None or key.has_expired or not key.is_valid(raw):
        return None
    return key


def api_key_touch(key: CompanyAPIKey) -> None:
    """Record that ``key`` is in use: at most one write per key per minute per process."""
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        CompanyAPIKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now


# A key this process holds was checked moments ago; for it, "this address is not locked
# out" is trusted this long before Redis is asked again (a lockout made by another process
# applies within it, one made here at once), which spares the hottest calls a round trip.
LOCKOUT_TRUSTED_SECONDS = 1.0
_MAX_TRUSTED_ADDRESSES = 50_000
_not_locked_out: dict[str | None, float] = {}  # address -> when Redis last said so, this process


def api_key_lockout(address: str | None, *, key_known: bool = False) -> int:
    """Seconds until ``address`` may try an API key again; 0 when it may now. An address
    that failed ``API_KEY_FAILURES_PER_IP`` times in this window of
    ``API_KEY_FAILURE_WINDOW_SECONDS`` is refused until the window ends, even with a good
    key (answering that differently would tell a guesser when they hit one). With
    ``key_known`` (the caller's key is one this process holds, ``api_key_known``) an answer
    of 0 read from Redis within ``LOCKOUT_TRUSTED_SECONDS`` is reused."""
    length = settings.API_KEY_FAILURE_WINDOW_SECONDS
    now = time.time()
    if key_known:
        seen = _not_locked_out.get(address)
        if seen is not None and 0 <= now - seen < LOCKOUT_TRUSTED_SECONDS:
            return 0
    window = int(now // length)
    try:
        failures = cache.get(api_key_failure_key(address, window), 0)
    except CACHE_ERRORS as exc:  # Redis down: keys still work (PostgreSQL checks them); no lockout
        _lockout_degraded.failed(exc, now)
        return 0
    _lockout_degraded.recovered(now)
    if failures < settings.API_KEY_FAILURES_PER_IP:
        if len(_not_locked_out) >= _MAX_TRUSTED_ADDRESSES:
            _not_locked_out.clear()
        _not_locked_out[address] = now
        return 0
    _not_locked_out.pop(address, None)
    return max(math.ceil((window + 1) * length - now), 1)


def api_key_failure_count(address: str | None) -> int:
    """Count one failed API-key attempt against ``address`` in this window."""
    _not_locked_out.pop(address, None)  # this process asks Redis again from now on
    length = settings.API_KEY_FAILURE_WINDOW_SECONDS
    key = api_key_failure_key(address, int(time.time() // length))
    try:
        cache.add(key, 0, timeout=length + 1)
        try:
            return cache.incr(key)
        except ValueError:  # expired in between
            cache.set(key, 1, timeout=length + 1)
            return 1
    except CACHE_ERRORS as exc:
        _lockout_degraded.failed(exc, time.time())
        return 0


def api_key_lockout_forget() -> None:
    """Forget what this process trusts about addresses (tests; a cleared lockout)."""
    _not_locked_out.clear()


INVALID_KEY = "Invalid, revoked or expired API key."
LOCKED_OUT = "Too many failed API-key attempts from this address."


def api_key_authenticate(raw: str, address: str | None) -> CompanyAPIKey:
    """The valid key ``raw`` names, for a caller at ``address``: a locked-out address is
    refused (429) before its key is looked at, a wrong key is counted against the address
    and refused (401). For a key this process holds, Redis's "not locked out" of the last
    ``LOCKOUT_TRUSTED_SECONDS`` is reused. The caller records the use (``api_key_touch``)."""
    wait = api_key_lockout(address, key_known=api_key_known(raw))
    if wait:
        raise exceptions.Throttled(wait=wait, detail=LOCKED_OUT)
    key = api_key_check(raw)
    if key is None:
        api_key_failure_count(address)
        raise exceptions.AuthenticationFailed(INVALID_KEY)
    return key


class CompanyAPIKeyAuthentication(authentication.BaseAuthentication):
    """Resolves ``request.auth`` to a valid, unrevoked, unexpired ``CompanyAPIKey``.

    A request without an ``Api-Key`` header is left to the other authenticators; one with
    a wrong key is refused outright (401), never silently treated as anonymous. Failed
    attempts are counted per client address: too many, and the address gets 429."""

    keyword = "Api-Key"
    key_parser = KeyParser()

    def authenticate(self, request: Request) -> tuple[AnonymousUser, CompanyAPIKey] | None:
        raw = self.key_parser.get(request)
        if not raw:
            return None
        key = api_key_authenticate(raw, client_ip(request._request))
        api_key_touch(key)
        return AnonymousUser(), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class HasCompanyAPIKey(permissions.BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, CompanyAPIKey)


class IsCompanyUserOrAPIKey(permissions.BasePermission):
    """A logged-in user (session or token) or a company API key."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, CompanyAPIKey) or bool(
            request.user and request.user.is_authenticated
        )


class CompanyAPIKeyScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema how a company API key is sent."""

    target_class = CompanyAPIKeyAuthentication
    name = "CompanyAPIKey"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <prefix>.<secret>`: a company API key (created in admin, shown once).",
        }
