"""The entitlement check for the product backend (API key): what each feature allows this
period, and whether an action of a given size would be accepted. Read from counters only,
so the backend can ask before every action it meters."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import CompanyAPIKeyAuthentication, HasCompanyAPIKey, api_key_touch
from accounts.models import CompanyAPIKey
from core.errors import ApplicationError
from core.middleware import client_ip
from usage.lean import answer, lean_key, lean_or_drf, read_json, refuse
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

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        """The DRF view, with well-formed calls taken by ``entitlement_check_lean`` first; the
        schema generator still sees this class."""
        return lean_or_drf(super().as_view(**initkwargs), entitlement_check_lean)

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
        return Response(_decide(key, data.validated_data["feature"], data.validated_data["quantity"]))


def _check_input(data: Any) -> tuple[str, int]:
    """``(feature, quantity)`` from the body: the common well-formed body read directly,
    anything else through ``EntitlementCheckIn`` (same coercions, same errors)."""
    if type(data) is dict:
        feature, quantity = data.get("feature"), data.get("quantity", 1)
        if (
            type(feature) is str
            and 0 < len(feature) <= 50
            and feature == feature.strip()
            and type(quantity) is int
            and 1 <= quantity <= MAX_QUANTITY
        ):
            return feature, quantity
    checked = EntitlementCheckIn(data=data)
    checked.is_valid(raise_exception=True)
    return checked.validated_data["feature"], checked.validated_data["quantity"]


def _decide(key: CompanyAPIKey, feature: str, quantity: int) -> dict[str, Any]:
    standings = entitlement_standings(company=key.company, at=timezone.now())
    standing = standings.get(feature)
    if standing is None:
        raise serializers.ValidationError(
            {"feature": [f"Unknown feature; one of: {', '.join(standings)}."]}, code="invalid_choice"
        )
    decision = entitlement_check(standing=standing, quantity=quantity)
    allowed, reason = decision.allowed, decision.reason
    if allowed:
        refusal = spend_cap_refusal(company=key.company, standings=standings, feature=feature, quantity=quantity)
        if refusal is not None:
            allowed, reason = False, refusal
    return {"allowed": allowed, "remaining": decision.remaining, "reason": reason}


def entitlement_check_lean(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/entitlements/check/`` without DRF (``usage.lean``): the same checks,
    order, answers and error shape as ``EntitlementCheckView``, at a fraction of the cost,
    so the product backend can ask before every action."""
    try:
        key = lean_key(request, address=client_ip(request))
        api_key_touch(key)
        feature, quantity = _check_input(read_json(request))
        return answer(_decide(key, feature, quantity))
    except (exceptions.APIException, ApplicationError) as exc:
        return refuse(exc)
