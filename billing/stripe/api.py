"""The upgrade flow behind the usage meter's upgrade prompt, and the Billing Portal.

Only a company's owners and admins may change its plan or open its portal; staff may act
for any company by naming it. Anyone else gets 404 for another company's data.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import APIException, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Company, Membership, MembershipRole
from audit.services import Actor
from billing.plans.models import Tier
from billing.stripe.gateway import StripeGatewayError
from billing.stripe.upgrades import UpgradeRefused, billing_change_tier, billing_portal_session
from core.errors import Conflict, ServiceUnavailable

MANAGER_ROLES = (MembershipRole.OWNER, MembershipRole.ADMIN)


class BadGateway(APIException):
    status_code = 502
    default_detail = "Stripe refused the request; the ops team has the details."
    default_code = "stripe_error"


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
    if wanted:
        # str.isdigit() is True for "²" and other non-ASCII digits that int() refuses.
        lookup = {"pk": int(wanted)} if wanted.isascii() and wanted.isdigit() else {"slug": wanted}
        company = Company.objects.select_related("tier").filter(**lookup).first()
        if company is None:
            raise Http404
        if billing_staff:
            return company
        role = Membership.objects.filter(user=user, company=company).values_list("role", flat=True).first()
        if role is None:
            raise Http404
    else:
        memberships = list(Membership.objects.filter(user=user).select_related("company__tier")[:2])
        if not memberships:
            if billing_staff:
                raise ValidationError({"company": ["Staff must name a company."]})
            raise Http404
        if len(memberships) > 1:
            raise ValidationError({"company": ["You belong to several companies: name one."]})
        company, role = memberships[0].company, memberships[0].role
    if role not in MANAGER_ROLES:
        raise PermissionDenied("Only the company's owners and admins can change its billing.")
    return company


def _gateway_error(exc: StripeGatewayError) -> APIException:
    if exc.retryable:
        return ServiceUnavailable("Stripe is not reachable right now; try again in a minute.")
    return BadGateway()


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
        try:
            result = billing_change_tier(company=company, tier=tier, actor=Actor.of_user(request.user))
        except UpgradeRefused as exc:
            if exc.status == 409:
                raise Conflict(str(exc), field=exc.field)
            raise ValidationError({exc.field: [str(exc)]})
        except StripeGatewayError as exc:
            raise _gateway_error(exc)
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
        try:
            url = billing_portal_session(company=company, actor=Actor.of_user(request.user))
        except StripeGatewayError as exc:
            raise _gateway_error(exc)
        return Response({"url": url})
