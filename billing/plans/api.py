"""``GET /api/v1/plans/quote/``: the pricing calculator's API, public (no login).

Volumes per feature (the catalogue's features, by code, as query parameters) in, and what
a month of them costs on every public tier out, priced by ``billing.plans.pricing`` as the
usage summary and the account pages are.
"""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.plans.catalogue import DEFAULT_FEATURES
from billing.plans.selectors import MAX_QUOTE_VOLUME, feature_codes, plans_quote
from billing.plans.throttles import QuoteThrottle


def quote_volumes(params: Any, *, features: list[str]) -> dict[str, int]:
    """Validated volumes: every feature of the catalogue (absent = 0), whole numbers from 0
    to ``MAX_QUOTE_VOLUME``. Unknown names and bad values are a 400 naming each field."""
    errors: dict[str, list[str]] = {}
    for name in params:
        if name not in features:
            errors[name] = [f"Unknown feature; the features are {', '.join(features)}."]
    volumes: dict[str, int] = {}
    for code in features:
        raw = str(params.get(code, "")).strip()
        if raw == "":
            volumes[code] = 0
            continue
        if not (raw.isascii() and raw.isdigit()):
            errors[code] = ["A whole number of units per month, 0 or more."]
        elif len(raw) > 13 or int(raw) > MAX_QUOTE_VOLUME:
            errors[code] = [f"At most {MAX_QUOTE_VOLUME:,} per month."]
        else:
            volumes[code] = int(raw)
    if errors:
        raise ValidationError(errors)
    return volumes


class _QuoteSchema(AutoSchema):
    """One query parameter per feature of the catalogue when the schema is generated."""

    def get_override_parameters(self) -> list[Any]:
        try:
            codes = feature_codes()
        except DatabaseError:  # generating the schema without a database
            codes = [code for code, *_ in DEFAULT_FEATURES]
        parameters: list[Any] = [
            OpenApiParameter(
                code,
                int,
                description=f"Units of {code} per month (0 to {MAX_QUOTE_VOLUME:,}; default 0).",
            )
            for code in codes
        ]
        return parameters + list(super().get_override_parameters())


_feature_out = inline_serializer(
    "QuoteFeature",
    {
        "feature": serializers.CharField(),
        "volume": serializers.IntegerField(),
        "included": serializers.IntegerField(allow_null=True, help_text="null: unlimited, or no limit set"),
        "overage_units": serializers.IntegerField(),
        "overage_unit_price": serializers.IntegerField(),
        "overage_cost": serializers.IntegerField(),
    },
    many=True,
)
_tier_out = inline_serializer(
    "QuoteTier",
    {
        "code": serializers.CharField(),
        "name": serializers.CharField(),
        "currency": serializers.CharField(),
        "monthly_price": serializers.IntegerField(help_text="Minor units (cents)."),
        "overage_cost": serializers.IntegerField(),
        "total": serializers.IntegerField(help_text="monthly_price + overage_cost"),
        "offered": serializers.BooleanField(help_text="false: a used feature has no limit on this tier"),
        "not_offered": serializers.ListField(child=serializers.CharField()),
        "cheapest": serializers.BooleanField(),
        "costs_more_by": serializers.IntegerField(
            allow_null=True, help_text="total minus the cheapest tier's total (0 for the cheapest)"
        ),
        "features": _feature_out,
    },
    many=True,
)


class QuoteView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [QuoteThrottle]
    schema = _QuoteSchema()

    @extend_schema(
        summary="What monthly volumes cost on every public plan (the pricing calculator)",
        responses=inline_serializer(
            "QuoteOut",
            {
                "volumes": serializers.DictField(child=serializers.IntegerField()),
                "cheapest": serializers.CharField(allow_null=True),
                "reason": serializers.CharField(),
                "tiers": _tier_out,
            },
        ),
    )
    def get(self, request: Request) -> Response:
        volumes = quote_volumes(request.query_params, features=feature_codes())
        return Response(plans_quote(volumes=volumes))
