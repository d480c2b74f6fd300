"""The upgrade flow behind the usage meter's upgrade prompt, and the Billing Portal.

Only a company's owners and admins may change its plan or open its portal; staff may act
for any company by naming it. Anyone else gets 404 for another company's data.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Company, MembershipRole
from accounts.tenancy import request_company
from audit.services import Actor
from billing.plans.models import Tier
from billing.stripe.upgrades import billing_change_tier, billing_portal_session

MANAGER_ROLES = (MembershipRole.OWNER, MembershipRole.ADMIN)


class _CompanyField(serializers.CharField):
    """A company's id or slug (only needed by staff, or by people in several companies)."""


class UpgradeIn(serializers.Serializer):
    tier = serializers.SlugField(max_length=50)
    company = _CompanyField(required=False, max_length=100)


class PortalIn(serializers.Serializer):
    company = _CompanyField(required=False, max_length=100)


def managed_company(request, wanted: str | None) -> Company:
    """The company the user may manage billing of: their own (as owner/admin), or any
    company for staff allowed to change companies (``accounts.change_company``). Someone
    outside the company gets 404, a plain member 403."""
    user = request.user
    billing_staff = user.is_staff and user.has_perm("accounts.change_company")
    chosen = request_company(request, wanted, staff=billing_staff)
    if not chosen.as_staff and chosen.role not in MANAGER_ROLES:
        raise PermissionDenied("Only the company's owners and admins can change its billing.")
    return chosen.company


class UpgradeView(APIView):
    @extend_schema(
        request=UpgradeIn,
        responses=inline_serializer(
            "UpgradeOut",
            {
                "action": serializers.ChoiceField(choices=["checkout", "changed"]),
                "url": serializers.URLField(required=False),
                "tier": serializers.CharField(),
                "status": serializers.CharField(required=False),
                "billing_event": serializers.IntegerField(),
            },
        ),
        summary="Change the company's plan (Stripe Checkout, or a prorated price change)",
    )
    def post(self, request):
        data = UpgradeIn(data=request.data)
        data.is_valid(raise_exception=True)
        company = managed_company(request, data.validated_data.get("company"))
        tier = Tier.objects.filter(code=data.validated_data["tier"], is_public=True).first()
        if tier is None:
            raise ValidationError({"tier": ["Unknown plan."]})
        result = billing_change_tier(company=company, tier=tier, actor=Actor.of_user(request.user))
        return Response(result)


class PortalView(APIView):
    @extend_schema(
        request=PortalIn,
        responses=inline_serializer("PortalOut", {"url": serializers.URLField()}),
        summary="A Stripe Billing Portal session for the company",
    )
    def post(self, request):
        data = PortalIn(data=request.data)
        data.is_valid(raise_exception=True)
        company = managed_company(request, data.validated_data.get("company"))
        url = billing_portal_session(company=company, actor=Actor.of_user(request.user))
        return Response({"url": url})
