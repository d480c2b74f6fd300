"""Whose rows the database shows: the scope behind PostgreSQL's row-level security.

The application filters every query by company itself; row-level security is the
backstop for a filter someone forgot. Each tenant table has a policy that reads the
connection's ``app.scope`` and ``app.company_ids`` settings (see ``trans_bot.db_roles``);
this module decides them, and ``core.postgresql`` writes them to the connection before the
next statement whenever they change.

Scopes, from the narrowest:

- ``none``: nothing. An anonymous request, or one whose caller is not known yet (it may
  read the one API key whose prefix it presents, to authenticate).
- ``company``: the rows of one company: a request authenticated by that company's API key.
- ``user``: the rows of the companies a signed-in member belongs to (looked up in the
  database when the scope is applied).
- ``ops``: every row, always with a reason (``staff:olivia``, ``task:usage.nightly_monitor``,
  ``command:migrate``, ``beat``, ``stripe-webhook``). The reason goes to the connection too
  (``app.scope_reason`` and ``application_name``), so the database's own logs and
  ``pg_stat_activity`` say on whose behalf a statement ran with every row in view.

Which scope holds: an explicit ``scoped(...)`` block (innermost wins); inside a request
(``TenantScopeMiddleware``), the request's caller, read afresh at every statement, so the
scope follows authentication as it happens (session, token, API key, sign-in, sign-out);
outside requests, the process's default (``set_process_scope``): ``none`` unless a
management command, beat or the test suite says ``ops``. Celery tasks run in ``ops``
(``task_prerun``)."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.functional import LazyObject, empty

logger = logging.getLogger(__name__)

NONE, COMPANY, USER, OPS = "none", "company", "user", "ops"


@dataclass(frozen=True)
class Scope:
    kind: str
    company_ids: tuple[int, ...] = ()
    user_id: int | None = None
    # An unauthenticated request may read the one API key it presents (to check it).
    key_prefix: str = ""
    reason: str = ""


NOTHING = Scope(NONE)


def ops(reason: str) -> Scope:
    """Every row, for ``reason`` (who or what needs them all)."""
    if not reason:
        raise ValueError("the ops scope needs a reason")
    return Scope(OPS, reason=reason)


def company(company_id: int, *, reason: str) -> Scope:
    return Scope(COMPANY, company_ids=(int(company_id),), reason=reason)


_explicit: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("tenant_scope", default=None)
_request: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar("tenant_scope_request", default=None)
_process_default: Scope = NOTHING


def set_process_scope(scope: Scope) -> None:
    """The scope of this process's code outside requests and ``scoped`` blocks, every
    thread included (a management command, beat, the test suite)."""
    global _process_default
    _process_default = scope
    if scope.kind == OPS:
        logger.debug("tenant scope: this process runs with every row in view (ops: %s)", scope.reason)


@contextmanager
def scoped(scope: Scope) -> Iterator[Scope]:
    """Run the block in ``scope``; the previous one comes back after it."""
    token = _explicit.set(scope)
    try:
        yield scope
    finally:
        _explicit.reset(token)


@contextmanager
def ops_scope(reason: str) -> Iterator[Scope]:
    """``with ops_scope("stripe-webhook"):`` every row, for that reason."""
    with scoped(ops(reason)) as scope:
        yield scope

_key_parser: Any = None


def _presented_key(request: HttpRequest) -> str:
    global _key_parser
    if _key_parser is None:  # imported late: it needs the app registry
        from rest_framework_api_key.permissions import KeyParser

        _key_parser = KeyParser()
    return _key_parser.get(request) or ""


def _request_user(request: HttpRequest) -> Any:
    user = request.__dict__.get("user")
    if isinstance(user, LazyObject):
        # Not looked up yet: asking now would itself run queries (session, user).
        wrapped = user._wrapped
        return None if wrapped is empty else wrapped
    return user


def request_scope(request: HttpRequest) -> Scope:
    """The scope a request's caller has, from what authentication has found so far."""
    auth = request.__dict__.get("auth")  # DRF copies its request.auth here
    company_id = getattr(auth, "company_id", None)
    if isinstance(company_id, int):
        return Scope(COMPANY, company_ids=(company_id,), reason=f"api-key:{getattr(auth, 'prefix', '')}")
    user = _request_user(request)
    if user is not None and getattr(user, "is_authenticated", False):
        if user.is_staff:
            return Scope(OPS, reason=f"staff:{user.get_username()}")
        return Scope(USER, user_id=user.pk, reason=f"user:{user.pk}")
    raw_key = _presented_key(request)
    if raw_key:
        return Scope(NONE, key_prefix=raw_key.partition(".")[0][:64])
    return NOTHING


def current() -> Scope:
    explicit = _explicit.get()
    if explicit is not None:
        return explicit
    request = _request.get()
    if request is not None:
        return request_scope(request)
    return _process_default


# --- Applying it to a connection (core.postgresql calls these) -------------------------

_SET_SQL = """
SELECT set_config('app.scope', %s, false), set_config('app.company_ids', %s, false),
       set_config('app.user_id', %s, false), set_config('app.key_prefix', %s, false),
       set_config('app.scope_reason', %s, false), set_config('application_name', %s, false)
"""


def apply(connection: Any, scope: Scope) -> None:
    """Write ``scope`` to ``connection`` (a Django PostgreSQL connection wrapper)."""
    raw = connection.connection
    ids = ",".join(str(i) for i in scope.company_ids)
    user_id = "" if scope.user_id is None else str(scope.user_id)
    name = f"trans_bot {scope.kind} {scope.reason}".strip()[:63]
    with connection.wrap_database_errors:  # Django's error classes, as for any statement
        raw.execute(_SET_SQL, [scope.kind, ids, user_id, scope.key_prefix, scope.reason, name])
        if scope.kind == USER:
            # The member's companies, read through the membership table's own policy (which
            # shows a user their memberships); see trans_bot.db_roles.
            raw.execute("SELECT app_enter_user_scope()")
    connection.tenant_scope_applied = scope


def execute_wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    connection = context["connection"]
    scope = current()
    if connection.tenant_scope_applied != scope:
        apply(connection, scope)
    return execute(sql, params, many, context)


# --- Where scopes come from ------------------------------------------------------------


class TenantScopeMiddleware:
    """Requests run in their caller's scope (see ``request_scope``), never in the process
    default: an anonymous request sees no tenant rows. Explicit scopes from outside the
    request (a test's) do not leak into it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        outer = _explicit.set(None)
        token = _request.set(request)
        try:
            return self.get_response(request)
        finally:
            _request.reset(token)
            _explicit.reset(outer)


_task_tokens: dict[str, contextvars.Token[Scope | None]] = {}


def _task_started(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    if task_id is not None:
        _task_tokens[task_id] = _explicit.set(ops(f"task:{getattr(task, 'name', '?')}"))


def _task_finished(task_id: str | None = None, **kwargs: Any) -> None:
    token = _task_tokens.pop(task_id, None) if task_id is not None else None
    if token is not None:
        try:
            _explicit.reset(token)
        except ValueError:  # finished in another context than it started: drop it there
            _explicit.set(None)


def _beat_started(**kwargs: Any) -> None:
    set_process_scope(ops("beat"))


def install_celery_hooks() -> None:
    """Tasks run in the ops scope (named after the task); beat too."""
    from celery.signals import beat_init, task_postrun, task_prerun

    task_prerun.connect(_task_started, dispatch_uid="core.tenant_scope.task_started", weak=False)
    task_postrun.connect(_task_finished, dispatch_uid="core.tenant_scope.task_finished", weak=False)
    beat_init.connect(_beat_started, dispatch_uid="core.tenant_scope.beat_started", weak=False)
