"""The usage API: ingestion for the product backend (API key), the usage meter and the
plan list for the frontend (session or token) and the backend (API key).

Ingestion is the hot path. A well-formed call (``Api-Key`` header, a JSON body) is served
by a plain Django view (``ingest``) that does what the DRF view does, in the same order
with the same answers, without DRF's request and response machinery; anything else (no
key, another content type or ``Accept``) goes to the DRF view, which also gives the
OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import (
    CompanyAPIKeyAuthentication,
    HasCompanyAPIKey,
    IsCompanyUserOrAPIKey,
    api_key_touch,
)
from accounts.models import CompanyAPIKey
from accounts.tenancy import company_by_reference, request_company
from billing.plans.cache import feature_ids
from billing.plans.models import LimitMode
from core.errors import ApplicationError
from core.middleware import client_ip
from usage.extensions import summary_extended
from usage.lean import answer, lean_key, lean_or_drf, read_json, refuse
from usage.parsers import LimitedJSONParser
from usage.selectors import plans_list, usage_summary
from usage.services import usage_record_events
from usage.throttles import UsageIngestThrottle, ingest_throttle_wait
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


def ingest(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/usage/events/`` without DRF: authenticate (the address's lockout,
    the key from this process's cache), throttle (the key's tally in this process, settled
    with Redis in batches), read the body, validate, store. Same checks, order, statuses
    and error shape as ``UsageEventsView``."""
    try:
        key = lean_key(request, address=client_ip(request))
        api_key_touch(key)
        wait = ingest_throttle_wait(key.prefix)
        if wait is not None:
            raise exceptions.Throttled(wait=wait)
        return answer(_record(key, read_json(request)))
    except (exceptions.APIException, ApplicationError) as exc:
        return refuse(exc)


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
        return lean_or_drf(super().as_view(**initkwargs), ingest)

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

    @extend_schema(
        responses={
            200: inline_serializer(
                "PlansOut",
                {
                    "tiers": inline_serializer(
                        "PlanOut",
                        {
                            "code": serializers.CharField(),
                            "name": serializers.CharField(),
                            "monthly_price": serializers.IntegerField(help_text="Minor units (cents)."),
                            "currency": serializers.CharField(),
                            "limits": inline_serializer(
                                "PlanLimitOut",
                                {
                                    "feature": serializers.CharField(),
                                    "name": serializers.CharField(),
                                    "unit": serializers.CharField(),
                                    "included": serializers.IntegerField(
                                        allow_null=True, help_text="Per period; null: unlimited."
                                    ),
                                    "overage_unit_price": serializers.IntegerField(help_text="Minor units per unit."),
                                    "mode": serializers.ChoiceField(
                                        choices=LimitMode.choices,
                                        help_text="Beyond the included quantity: soft (billed), hard (refused), "
                                        "capped (billed up to overage_cap per period, then refused).",
                                    ),
                                    "overage_cap": serializers.IntegerField(
                                        allow_null=True, help_text="Capped mode: the most overage billed per period."
                                    ),
                                },
                                many=True,
                            ),
                        },
                        many=True,
                    )
                },
            )
        },
        summary="The public plans with their prices and limits",
    )
    def get(self, request):
        return Response({"tiers": plans_list()})
