"""The entitlement check for the product backend (API key): what each feature allows this
period, and whether an action of a given size would be accepted. Read from counters only,
so the backend can ask before every action it meters."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import CompanyAPIKeyAuthentication, HasCompanyAPIKey
from accounts.models import CompanyAPIKey
from usage.parsers import LimitedJSONParser
from usage.selectors import FeatureStanding, entitlement_check, entitlement_standings
from usage.spend import spend_cap_refusal

MAX_QUANTITY = 10**12


def _standing_out(standing: FeatureStanding) -> dict[str, Any]:
    terms = standing.entitlement.terms
    return {
        "feature": standing.entitlement.feature,
        "included": terms.included,
        "used": standing.used,
        "remaining": standing.remaining,
        "mode": terms.mode,
        "limit": terms.ceiling,
        "accepts": standing.accepts,
        "overage_unit_price": terms.overage_unit_price,
        "overage_cap": terms.overage_cap,
        "contract": standing.entitlement.source == "override",
        "resets_at": standing.resets_at,
    }


_standing_fields: dict[str, serializers.Field] = {
        "feature": serializers.CharField(),
        "included": serializers.IntegerField(allow_null=True, help_text="Units included per period; null: unlimited."),
        "used": serializers.IntegerField(),
        "remaining": serializers.IntegerField(allow_null=True, help_text="Included units left this period."),
        "mode": serializers.ChoiceField(choices=["soft", "hard", "capped"]),
        "limit": serializers.IntegerField(allow_null=True, help_text="Most units accepted per period; null: none."),
        "accepts": serializers.IntegerField(allow_null=True, help_text="Units still accepted this period."),
        "overage_unit_price": serializers.IntegerField(),
        "overage_cap": serializers.IntegerField(allow_null=True),
        "contract": serializers.BooleanField(help_text="True when a contract override sets these terms."),
        "resets_at": serializers.DateTimeField(),
}


class EntitlementsView(APIView):
    """``GET /api/v1/entitlements/``: every feature's terms and use this period."""

    authentication_classes = [CompanyAPIKeyAuthentication]
    permission_classes = [HasCompanyAPIKey]

    @extend_schema(
        responses={
            200: inline_serializer(
                "EntitlementsOut", {"features": inline_serializer("EntitlementOut", _standing_fields, many=True)}
            )
        }
    )
    def get(self, request: Request) -> Response:
        key = request.auth
        assert isinstance(key, CompanyAPIKey)
        standings = entitlement_standings(company=key.company, at=timezone.now())
        return Response({"features": [_standing_out(s) for s in standings.values()]})


class EntitlementCheckIn(serializers.Serializer):
    feature = serializers.CharField(max_length=50)
    quantity = serializers.IntegerField(default=1, min_value=1, max_value=MAX_QUANTITY)


class EntitlementCheckView(APIView):
    """``POST /api/v1/entitlements/check/``: would ``quantity`` more of ``feature`` be
    accepted now? Nothing is counted: the usage event does that."""

    authentication_classes = [CompanyAPIKeyAuthentication]
    permission_classes = [HasCompanyAPIKey]
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        request=EntitlementCheckIn,
        responses={
            200: inline_serializer(
                "EntitlementCheckOut",
                {
                    "allowed": serializers.BooleanField(),
                    "remaining": serializers.IntegerField(allow_null=True),
                    "reason": serializers.CharField(),
                },
            )
        },
    )
    def post(self, request: Request) -> Response:
        key = request.auth
        assert isinstance(key, CompanyAPIKey)
        data = EntitlementCheckIn(data=request.data)
        data.is_valid(raise_exception=True)
        standings = entitlement_standings(company=key.company, at=timezone.now())
        standing = standings.get(data.validated_data["feature"])
        if standing is None:
            raise serializers.ValidationError(
                {"feature": [f"Unknown feature; one of: {', '.join(standings)}."]}, code="invalid_choice"
            )
        quantity = data.validated_data["quantity"]
        decision = entitlement_check(standing=standing, quantity=quantity)
        allowed, reason = decision.allowed, decision.reason
        if allowed:
            refusal = spend_cap_refusal(
                company=key.company, standings=standings, feature=data.validated_data["feature"], quantity=quantity
            )
            if refusal is not None:
                allowed, reason = False, refusal
        return Response({"allowed": allowed, "remaining": decision.remaining, "reason": reason})
