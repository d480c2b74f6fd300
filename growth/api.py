"""``POST /api/v1/experiments/exposures/``: the frontend says it showed a prompt."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import CompanyAPIKeyAuthentication, IsCompanyUserOrAPIKey
from accounts.tenancy import request_company
from growth.models import Experiment, ExposureSource
from growth.selectors import company_variant
from growth.services import exposure_record


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
                {"recorded": serializers.BooleanField(), "variant": serializers.CharField(allow_null=True)},
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
