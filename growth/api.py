"""``POST /api/v1/experiments/exposures/``: the frontend says it showed a prompt (or, for
the holdout, would have). ``POST /api/v1/bookings/``: the product's bookings, for quote→book."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import CompanyAPIKeyAuthentication, HasCompanyAPIKey, IsCompanyUserOrAPIKey
from accounts.models import CompanyAPIKey
from accounts.tenancy import request_company
from growth.models import Experiment, ExposureSource
from growth.selectors import company_variant
from growth.services import BookingIn, bookings_record, exposure_record


class ExposureIn(serializers.Serializer):
    experiment = serializers.SlugField(max_length=60, help_text="upgrade.prompt.experiment from the usage summary.")
    company = serializers.CharField(required=False, help_text="Company slug or id (members of several).")


class ExposuresView(APIView):
    """Record that the company's upgrade prompt was shown. Counted once per company and
    experiment per day; the variant is the company's own (assigned, not taken from the body)."""

    authentication_classes = [CompanyAPIKeyAuthentication, SessionAuthentication, TokenAuthentication]
    permission_classes = [IsCompanyUserOrAPIKey]

    @extend_schema(
        request=ExposureIn,
        responses={
            200: inline_serializer(
                "ExposureOut",
                {
                    "recorded": serializers.BooleanField(),
                    "variant": serializers.CharField(allow_null=True, help_text="null: the holdout."),
                },
            )
        },
    )
    def post(self, request):
        data = ExposureIn(data=request.data)
        data.is_valid(raise_exception=True)
        chosen = request_company(request, data.validated_data.get("company"), staff=False, how_to_name=" (company)")
        experiment = Experiment.objects.filter(key=data.validated_data["experiment"]).first()
        if experiment is None:
            raise serializers.ValidationError({"experiment": ["No experiment with this key."]})
        variant = company_variant(experiment=experiment, company=chosen.company)
        recorded = exposure_record(company=chosen.company, experiment=experiment, source=ExposureSource.API)
        return Response({"recorded": recorded, "variant": variant.key if variant else None})


class AwareDateTimeField(serializers.DateTimeField):
    """A time without a timezone is refused, as ingestion refuses it, never guessed."""

    def enforce_timezone(self, value):
        if timezone.is_naive(value):
            raise serializers.ValidationError("Give a timezone (e.g. 2026-11-16T09:30:00Z).", code="no_timezone")
        return super().enforce_timezone(value)


class BookingSerializer(serializers.Serializer):
    idempotency_key = serializers.CharField(max_length=255, help_text="Unique per company; a resend is a duplicate.")
    quantity = serializers.IntegerField(default=1, min_value=1, max_value=1000)
    occurred_at = AwareDateTimeField(required=False, help_text="With a timezone; defaults to now.")

    def validate_occurred_at(self, value):
        if value > timezone.now() + timedelta(seconds=settings.USAGE_MAX_FUTURE_SECONDS):
            raise serializers.ValidationError("Is in the future (more than 5 minutes ahead).")
        return value


class BookingBatch(serializers.Serializer):
    bookings = serializers.ListField(child=BookingSerializer(), min_length=1, max_length=1000)


class BookingsView(APIView):
    """The product backend reports bookings made from quotes (company API key), so the
    dashboard can show quote→book. 1 to 1,000 per request, all or nothing."""

    authentication_classes = [CompanyAPIKeyAuthentication]
    permission_classes = [HasCompanyAPIKey]

    @extend_schema(
        request=BookingBatch,
        responses={
            200: inline_serializer(
                "BookingsOut", {"accepted": serializers.IntegerField(), "duplicates": serializers.IntegerField()}
            )
        },
    )
    def post(self, request):
        key: CompanyAPIKey = request.auth
        data = BookingBatch(data=request.data)
        data.is_valid(raise_exception=True)
        now = timezone.now()
        bookings = [
            BookingIn(b["idempotency_key"], b["quantity"], b.get("occurred_at") or now)
            for b in data.validated_data["bookings"]
        ]
        accepted, duplicates = bookings_record(company=key.company, bookings=bookings, now=now)
        return Response({"accepted": accepted, "duplicates": duplicates})
