"""The usage API: ingestion for the product backend (API key), the usage meter and the
plan list for the frontend (session or token) and the backend (API key)."""

from __future__ import annotations

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import CompanyAPIKeyAuthentication, HasCompanyAPIKey, IsCompanyUserOrAPIKey
from accounts.models import Company, CompanyAPIKey
from billing.plans.models import Feature
from usage.parsers import LimitedJSONParser
from usage.selectors import plans_list, usage_summary
from usage.services import usage_record_events
from usage.throttles import UsageIngestThrottle
from usage.validation import validate_batch

USER_OR_KEY_AUTH = [CompanyAPIKeyAuthentication, SessionAuthentication, TokenAuthentication]


def _company_from_param(value: str) -> Company | None:
    if "\x00" in value:  # no such slug, and PostgreSQL text cannot hold NUL
        return None
    # isascii(): "²".isdigit() is true, but int("²") fails.
    lookup = {"pk": int(value)} if value.isascii() and value.isdigit() else {"slug": value}
    return Company.objects.select_related("tier").filter(**lookup).first()


def resolve_company(request) -> Company:
    """The company a request is about. A key is its company; a user is one of their
    companies (``?company=`` picks one); staff may name any company. Anything else is 404,
    so a tenant cannot learn whether another company exists."""
    wanted = request.query_params.get("company", "").strip()
    if isinstance(request.auth, CompanyAPIKey):
        company = request.auth.company
        if wanted and wanted not in (str(company.pk), company.slug):
            raise Http404
        return company
    user = request.user
    if wanted:
        company = _company_from_param(wanted)
        if company is None:
            raise Http404
        if user.is_staff or company.memberships.filter(user=user).exists():
            return company
        raise Http404
    companies = list(Company.objects.select_related("tier").filter(memberships__user=user)[:2])
    if len(companies) == 1:
        return companies[0]
    if not companies:
        if user.is_staff:
            raise ValidationError({"company": ["Staff must name a company (?company=<slug>)."]})
        raise Http404
    raise ValidationError({"company": ["You belong to several companies: name one (?company=<slug>)."]})


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
            )
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
            OpenApiParameter("company", str, description="Company slug or id (staff, or members of several).")
        ],
        responses={200: dict},
    )
    def get(self, request):
        return Response(usage_summary(company=resolve_company(request)))


class PlansView(APIView):
    """``GET /api/v1/plans/``: the public tiers with prices and limits."""

    authentication_classes = USER_OR_KEY_AUTH
    permission_classes = [IsCompanyUserOrAPIKey]

    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response({"tiers": plans_list()})
