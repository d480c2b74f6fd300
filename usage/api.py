"""The usage API: ingestion for the product backend (API key), the usage meter and the
plan list for the frontend (session or token) and the backend (API key).

Ingestion is the hot path. A well-formed call (``Api-Key`` header, a JSON body) is served
by a plain Django view (``ingest``) that does what the DRF view does, in the same order
with the same answers, without DRF's request and response machinery; anything else (no
key, another content type or ``Accept``) goes to the DRF view, which also gives the
OpenAPI schema.
"""

from __future__ import annotations

import functools
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import PermissionDenied
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import (
    INVALID_KEY,
    LOCKED_OUT,
    CompanyAPIKeyAuthentication,
    HasCompanyAPIKey,
    IsCompanyUserOrAPIKey,
    api_key_check,
    api_key_failure_count,
    api_key_known,
    api_key_lockout,
    api_key_touch,
)
from accounts.models import CompanyAPIKey
from accounts.tenancy import company_by_reference, request_company
from billing.plans.cache import feature_ids
from core.errors import ApplicationError, api_exception_handler
from core.middleware import client_ip
from usage.extensions import summary_extended
from usage.parsers import LimitedJSONParser
from usage.selectors import plans_list, usage_summary
from usage.services import usage_record_events
from usage.throttles import UsageIngestThrottle, ingest_admit
from usage.validation import validate_batch

USER_OR_KEY_AUTH = [CompanyAPIKeyAuthentication, SessionAuthentication, TokenAuthentication]
VIEW_ANY_COMPANY = "accounts.view_company"


_events_schema = inline_serializer(
    "UsageEventIn",
    {
        "feature": serializers.CharField(),
        "quantity": serializers.IntegerField(default=1, min_value=1),
        "idempotency_key": serializers.CharField(max_length=255),
        "occurred_at": serializers.DateTimeField(required=False),
    },
    many=True,
)


def _record(key: CompanyAPIKey, data: Any) -> dict[str, Any]:
    """What both ingest views do once the caller is known and the body is read."""
    now = timezone.now()
    events = validate_batch(data, features=feature_ids(), anchor_day=key.company.billing_anchor_day, now=now)
    result = usage_record_events(company=key.company, events=events, api_key=key, now=now)
    return {"accepted": result.accepted, "duplicates": result.duplicates, "duplicate_keys": result.duplicate_keys}


_JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})
_JSON_ACCEPTS = frozenset({"", "*/*", "application/json"})
_ALLOW = "POST, OPTIONS"
_renderer = JSONRenderer()


def _lean_applies(request: HttpRequest) -> bool:
    meta = request.META
    return (
        request.method == "POST"
        and meta.get("HTTP_AUTHORIZATION", "")[:8].lower() == "api-key "
        and meta.get("CONTENT_TYPE", "").lower() in _JSON_TYPES
        and meta.get("HTTP_ACCEPT", "") in _JSON_ACCEPTS
        and meta.get("CONTENT_LENGTH") not in (None, "", "0")
    )


def _answer(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(_renderer.render(data), status=status, content_type="application/json")
    response["Allow"] = _ALLOW
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _refuse(exc: exceptions.APIException | ApplicationError) -> HttpResponse:
    """``exc`` answered as the DRF view answers it (``core.errors.api_exception_handler``)."""
    if isinstance(exc, exceptions.AuthenticationFailed):
        exc.auth_header = CompanyAPIKeyAuthentication.keyword  # type: ignore[attr-defined]  # DRF reads it
    refused = api_exception_handler(exc, {})
    assert refused is not None  # every APIException and ApplicationError has its answer
    headers = {name: refused[name] for name in ("Retry-After", "WWW-Authenticate") if refused.has_header(name)}
    return _answer(refused.data, refused.status_code, headers)


def ingest(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/usage/events/`` without DRF: authenticate (the address's lockout,
    the key from this process's cache), throttle (one Redis round trip with the lockout),
    read the body, validate, store. Same checks, order, statuses and error shape as
    ``UsageEventsView``."""
    raw = request.META["HTTP_AUTHORIZATION"][8:]
    address = client_ip(request)
    try:
        if not api_key_known(raw):
            # As the DRF view: a locked-out address is refused before its key is looked up.
            wait = api_key_lockout(address)
            if wait:
                raise exceptions.Throttled(wait=wait, detail=LOCKED_OUT)
        key = api_key_check(raw)
        if key is None:
            wait = api_key_lockout(address)
            if wait:
                raise exceptions.Throttled(wait=wait, detail=LOCKED_OUT)
            api_key_failure_count(address)
            raise exceptions.AuthenticationFailed(INVALID_KEY)
        # As DRF does: the caller is known from here on (core.tenant_scope reads it for the database).
        request.auth = key  # type: ignore[attr-defined]  # DRF's attribute, HttpRequest has none
        admission = ingest_admit(prefix=key.prefix, address=address)
        if admission.locked_out:
            raise exceptions.Throttled(wait=admission.locked_out, detail=LOCKED_OUT)
        api_key_touch(key)
        if admission.throttled is not None:
            raise exceptions.Throttled(wait=admission.throttled)
        # HttpRequest is the file-like body stream DRF's parsers read.
        data = LimitedJSONParser().parse(
            request,  # type: ignore[arg-type]
            "application/json",
            {"request": request, "encoding": "utf-8"},
        )
        return _answer(_record(key, data))
    except (exceptions.APIException, ApplicationError) as exc:
        return _refuse(exc)


class UsageEventsView(APIView):
    """``POST /api/v1/usage/events/``: a batch of 1 to 1,000 metered events."""

    authentication_classes = [CompanyAPIKeyAuthentication]
    permission_classes = [HasCompanyAPIKey]
    throttle_classes = [UsageIngestThrottle]
    parser_classes = [LimitedJSONParser]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        """The DRF view, with well-formed calls taken by ``ingest`` first; the schema
        generator still sees this class."""
        drf_view = super().as_view(**initkwargs)

        @functools.wraps(drf_view)
        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if _lean_applies(request):
                return ingest(request)
            return drf_view(request, *args, **kwargs)

        return view

    @extend_schema(
        request=inline_serializer("UsageBatchIn", {"events": _events_schema}),
        responses={
            200: inline_serializer(
                "UsageBatchOut",
                {
                    "accepted": serializers.IntegerField(),
                    "duplicates": serializers.IntegerField(),
                    "duplicate_keys": serializers.ListField(child=serializers.CharField()),
                },
            ),
            422: OpenApiResponse(
                description="limit_reached: the batch would take a hard-limited (or capped, at its cap) "
                "feature past its limit; nothing was stored. fields[0].field names the event "
                "(events.<index>.feature)."
            ),
        },
    )
    def post(self, request):
        return Response(_record(request.auth, request.data))


class UsageSummaryView(APIView):
    """``GET /api/v1/usage/summary/``: the company's usage against its plan, and what this
    period would cost on every plan."""

    authentication_classes = USER_OR_KEY_AUTH
    permission_classes = [IsCompanyUserOrAPIKey]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "company",
                str,
                description="Company slug or id (members of several; staff with accounts.view_company).",
            )
        ],
        responses={200: dict},
    )
    def get(self, request):
        wanted = request.query_params.get("company")
        user = request.user
        # Staff read any company's usage only with the permission to view companies.
        may_read_any = bool(user.is_staff and user.has_perm(VIEW_ANY_COMPANY))
        try:
            chosen = request_company(request, wanted, staff=may_read_any, how_to_name=" (?company=<slug>)")
        except Http404:
            if user.is_staff and (not wanted or company_by_reference(wanted.strip()) is not None):
                raise PermissionDenied(f"Reading another company's usage needs the '{VIEW_ANY_COMPANY}' permission.")
            raise
        now = timezone.now()
        summary = usage_summary(company=chosen.company, at=now)
        return Response(summary_extended(company=chosen.company, summary=summary, at=now))


class PlansView(APIView):
    """``GET /api/v1/plans/``: the public tiers with prices and limits."""

    authentication_classes = USER_OR_KEY_AUTH
    permission_classes = [IsCompanyUserOrAPIKey]

    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response({"tiers": plans_list()})
