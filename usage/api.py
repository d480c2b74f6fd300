"""The usage API: ingestion for the product backend (API key), the usage meter and the
plan list for the frontend (session or token) and the backend (API key)."""

from __future__ import annotations

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import CompanyAPIKeyAuthentication, HasCompanyAPIKey, IsCompanyUserOrAPIKey
from accounts.models import CompanyAPIKey
from accounts.tenancy import company_by_reference, request_company
from billing.plans.models import Feature
from usage.extensions import summary_extended
from usage.parsers import LimitedJSONParser
from usage.selectors import plans_list, usage_summary
from usage.services import usage_record_events
from usage.throttles import UsageIngestThrottle
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


class UsageEventsView(APIView):
    """``POST /api/v1/usage/events/``: a batch of 1 to 1,000 metered events."""

    authentication_classes = [CompanyAPIKeyAuthentication]
    permission_classes = [HasCompanyAPIKey]
    throttle_classes = [UsageIngestThrottle]
    parser_classes = [LimitedJSONParser]

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
        key: CompanyAPIKey = request.auth
        now = timezone.now()
        features = dict(Feature.objects.values_list("code", "id"))
        events = validate_batch(
            request.data, features=features, anchor_day=key.company.billing_anchor_day, now=now
        )
        result = usage_record_events(company=key.company, events=events, api_key=key, now=now)
        return Response(
            {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "duplicate_keys": result.duplicate_keys,
            }
        )


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
