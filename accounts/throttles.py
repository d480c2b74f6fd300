"""Failed sign-ins are limited per client address and per username: fixed-window counters
in the cache, counted as the ingestion throttle counts requests (one Redis round trip).

In each window of ``LOGIN_FAILURE_WINDOW_SECONDS`` a username may fail
``LOGIN_FAILURES_PER_USERNAME`` times and an address ``LOGIN_FAILURES_PER_IP`` times; after
that, attempts for that username or from that address are refused until the window ends.
A refused attempt is not checked at all, so the right password is refused too: answering
it differently would tell a guesser when they hit it.

An attempt is counted *before* its password is checked and handed back when it succeeds,
so a burst of parallel guesses cannot all slip in under the limit.

Known addresses. Anyone could lock a username by failing on purpose. So an address the
username signed in from within ``LOGIN_KNOWN_ADDRESS_DAYS`` counts its failures for that
username in a bucket of its own (the same ``LOGIN_FAILURES_PER_USERNAME``) and is not held
by the username's lock: failing on purpose from elsewhere cannot keep its owner out of
their usual address, and guessing from that address is limited as before.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache


class SignInLocked(Exception):
    """Too many failed sign-ins for this username or from this address in this window."""

    def __init__(self, wait: int):
        super().__init__(f"locked for {wait} s")
        self.wait = wait


@dataclass(frozen=True)
class SignInAttempt:
    ip_key: str
    username_key: str
    # Counts in this window, this attempt included.
    ip_count: int
    username_count: int
    window_ends_in: int
    # From an address the username signed in from lately: username_count is at this address.
    known_address: bool = False

    @property
    def locks_if_it_fails(self) -> bool:
        """This attempt, if it fails, is the one that uses up the address's or the username's tries."""
        return (
            self.ip_count == settings.LOGIN_FAILURES_PER_IP
            or self.username_count == settings.LOGIN_FAILURES_PER_USERNAME
        )


def _digest(username: str) -> str:
    # Usernames are case-sensitive (so is the lock) and may hold any character: hash them.
    return hashlib.sha256(username.encode()).hexdigest()[:32]


def _keys(*, ip: str | None, username: str, window: int, known: bool = False) -> tuple[str, str]:
    """The address's bucket and the username's: its own, or, from a known address, the
    username's at that address."""
    user = f"signin-fail:user:{_digest(username)}:{window}"
    if known:
        user = f"signin-fail:user:{_digest(username)}:at:{ip}:{window}"
    return f"signin-fail:ip:{ip or 'unknown'}:{window}", user


def _known_key(*, ip: str, username: str) -> str:
    return f"signin-known:{_digest(username)}:{ip}"


def sign_in_address_known(*, ip: str | None, username: str) -> bool:
    """The username signed in from this address within ``LOGIN_KNOWN_ADDRESS_DAYS``."""
    return ip is not None and caches["default"].get(_known_key(ip=ip, username=username)) is not None


def _add(keys: tuple[str, ...], delta: int, ttl: int) -> list[int]:
    cache = caches["default"]  # the backend itself (``django.core.cache.cache`` is a proxy)
    if isinstance(cache, RedisCache):
        full = [cache.make_and_validate_key(key) for key in keys]
        client = cache._cache.get_client(full[0], write=True)
        pipe = client.pipeline()
        for key in full:
            pipe.incrby(key, delta)
            pipe.expire(key, ttl, nx=True)
        return [int(value) for value in pipe.execute()[::2]]
    counts: list[int] = []  # other caches (the embedded demo's file cache): not atomic, one machine
    for key in keys:
        cache.add(key, 0, timeout=ttl)
        try:
            counts.append(cache.incr(key, delta))
        except ValueError:  # expired in between
            cache.set(key, max(delta, 0), timeout=ttl)
            counts.append(max(delta, 0))
    return counts


def sign_in_attempt_begin(*, ip: str | None, username: str) -> SignInAttempt:
    """Count one attempt against the address and the username, or raise ``SignInLocked``."""
    length = settings.LOGIN_FAILURE_WINDOW_SECONDS
    now = time.time()
    window = int(now // length)
    known = sign_in_address_known(ip=ip, username=username)
    keys = _keys(ip=ip, username=username, window=window, known=known)
    ttl = length + 1
    ip_count, username_count = _add(keys, 1, ttl)
    ends_in = max(math.ceil((window + 1) * length - now), 1)
    if ip_count > settings.LOGIN_FAILURES_PER_IP or username_count > settings.LOGIN_FAILURES_PER_USERNAME:
        _add(keys, -1, ttl)  # a refused attempt is not a failure: it must not lengthen anything
        raise SignInLocked(wait=ends_in)
    return SignInAttempt(
        ip_key=keys[0], username_key=keys[1], ip_count=ip_count, username_count=username_count,
        window_ends_in=ends_in, known_address=known,
    )


def sign_in_attempt_succeeded(attempt: SignInAttempt, *, ip: str | None, username: str) -> None:
    """The attempt was no failure: hand it back to the address, clear the username's counts
    (whoever knows the password has nothing left to guess), and know the address."""
    _add((attempt.ip_key,), -1, settings.LOGIN_FAILURE_WINDOW_SECONDS + 1)
    window = int(time.time() // settings.LOGIN_FAILURE_WINDOW_SECONDS)
    cache = caches["default"]
    cache.delete_many([attempt.username_key, _keys(ip=ip, username=username, window=window)[1]])
    if ip is not None:
        cache.set(_known_key(ip=ip, username=username), 1, timeout=settings.LOGIN_KNOWN_ADDRESS_DAYS * 86400)


def sign_in_failures_clear(*, username: str) -> None:
    """Forget the username's failures in this window (its owner just proved who they are)."""
    window = int(time.time() // settings.LOGIN_FAILURE_WINDOW_SECONDS)
    caches["default"].delete(_keys(ip=None, username=username, window=window)[1])


# --- Password reset requests -------------------------------------------------------------
#
# Each request for a reset e-mail is counted, before the address is looked up, against the
# client address and against the e-mail address asked for (whether or not it belongs to
# anyone, so the limit tells nothing about accounts): ``PASSWORD_RESET_PER_IP`` and
# ``PASSWORD_RESET_PER_EMAIL`` in a fixed window of ``PASSWORD_RESET_WINDOW_SECONDS``.
# Beyond them the request is refused (429) and not counted, so nobody can fill a mailbox
# or the outbox through the reset form.


class ResetLimited(Exception):
    """Too many reset requests for this e-mail address or from this client address."""

    def __init__(self, wait: int):
        super().__init__(f"limited for {wait} s")
        self.wait = wait


def password_reset_counted(*, ip: str | None, email: str) -> None:
    """Count one reset request, or raise ``ResetLimited`` (counting nothing)."""
    length = settings.PASSWORD_RESET_WINDOW_SECONDS
    now = time.time()
    window = int(now // length)
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    keys = (f"pwreset:ip:{ip or 'unknown'}:{window}", f"pwreset:email:{digest}:{window}")
    ip_count, email_count = _add(keys, 1, length + 1)
    if ip_count > settings.PASSWORD_RESET_PER_IP or email_count > settings.PASSWORD_RESET_PER_EMAIL:
        _add(keys, -1, length + 1)
        raise ResetLimited(wait=max(math.ceil((window + 1) * length - now), 1))
