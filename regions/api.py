"""``GET /api/v1/regions/`` (live status) and ``POST /api/v1/regions/failover/`` (manual)."""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import Actor
from regions import services
from regions.models import FailoverEvent, Region
from regions.selectors import policy_get, region_uptime, service_availability


class CanFailOver(permissions.BasePermission):
    """Staff holding ``regions.fail_over`` (superusers hold every permission)."""

    message = "Failing over needs the 'regions.fail_over' permission."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff and user.has_perm("regions.fail_over"))


class CanViewRegions(permissions.BasePermission):
    """Staff holding ``regions.view_region`` or ``regions.fail_over`` (who may move traffic
    may see where it is). The status names internal base URLs and the probes' last
    errors, which are not for customers."""

    message = "Region status is for staff with the 'regions.view_region' permission."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(
            user
            and user.is_authenticated
            and user.is_staff
            and (user.has_perm("regions.view_region") or user.has_perm("regions.fail_over"))
        )


class RegionStatusSerializer(serializers.ModelSerializer):
    uptime = serializers.SerializerMethodField()

    class Meta:
        model = Region
        fields = [
            "slug",
            "name",
            "base_url",
            "order",
            "enabled",
            "is_active",
            "status",
            "consecutive_failures",
            "consecutive_successes",
            "failing_since",
            "last_checked_at",
            "last_latency_ms",
            "last_status_code",
            "last_error",
            "uptime",
        ]

    def get_uptime(self, region) -> dict:
        values = self.context["uptime"].get(region.pk, {})
        return {"24h": values.get("24h"), "7d": values.get("7d"), "30d": values.get("30d")}


class PolicySerializer(serializers.Serializer):
    multi_region_enabled = serializers.BooleanField()
    probe_interval_seconds = serializers.IntegerField()
    failure_threshold = serializers.IntegerField()
    recovery_threshold = serializers.IntegerField()
    auto_failback = serializers.BooleanField()
    cooldown_seconds = serializers.IntegerField()
    read_policy = serializers.CharField()
    pinned_region = serializers.CharField(source="pinned_region.slug", allow_null=True)
    pinned_by = serializers.CharField()
    pinned_at = serializers.DateTimeField(allow_null=True)
    last_failover_at = serializers.DateTimeField(allow_null=True)
    stranded_reason = serializers.CharField()


class AvailabilitySerializer(serializers.Serializer):
    slo_target = serializers.FloatField()
    availability = serializers.FloatField(allow_null=True, help_text="Percent of the covered time that was up.")
    window_start = serializers.DateTimeField(allow_null=True, help_text="The first probe counted.")
    window_label = serializers.CharField(help_text='What the figures cover, e.g. "over the last 3 h".')
    window_minutes = serializers.FloatField(help_text="Time the probes cover (at most 30 days).")
    downtime_minutes = serializers.FloatField()
    error_budget_minutes = serializers.FloatField(help_text="Downtime the SLO allows over the covered time.")
    error_budget_remaining_minutes = serializers.FloatField()
    meets_slo = serializers.BooleanField(allow_null=True)


class RegionsStatusSerializer(serializers.Serializer):
    regions = RegionStatusSerializer(many=True)
    active_region = serializers.CharField(allow_null=True)
    policy = PolicySerializer()
    availability = AvailabilitySerializer()


class RegionsStatusView(APIView):
    permission_classes = [CanViewRegions]

    @extend_schema(
        responses=RegionsStatusSerializer, summary="Live region status, uptime and SLO (staff: regions.view_region)"
    )
    def get(self, request):
        policy = policy_get()
        regions = list(Region.objects.order_by("order", "pk"))
        context = {"uptime": region_uptime()}
        active = next((r.slug for r in regions if r.is_active), None)
        return Response(
            {
                "regions": RegionStatusSerializer(regions, many=True, context=context).data,
                "active_region": active,
                "policy": PolicySerializer(policy).data,
                "availability": asdict(service_availability(slo_target=policy.slo_target)),
            }
        )


class FailoverRequestSerializer(serializers.Serializer):
    to = serializers.SlugRelatedField(
        slug_field="slug", queryset=Region.objects.all(), help_text="Slug of the region that takes traffic."
    )
    reason = serializers.CharField(max_length=2000, help_text="Why; goes to the audit trail and the alert.")
    force = serializers.BooleanField(default=False, help_text="Move even if the target is not healthy.")
    pin = serializers.BooleanField(default=False, help_text="Keep automation from moving traffic away.")


class FailoverEventSerializer(serializers.ModelSerializer):
    from_region: serializers.SlugRelatedField[Region] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    to_region: serializers.SlugRelatedField[Region] = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = FailoverEvent
        fields = [
            "id",
            "from_region",
            "to_region",
            "kind",
            "reason",
            "actor",
            "forced",
            "pinned",
            "failing_since",
            "decided_at",
        ]


class FailoverView(APIView):
    permission_classes = [CanFailOver]

    @extend_schema(
        request=FailoverRequestSerializer,
        responses={201: FailoverEventSerializer},
        summary="Fail over by hand (needs regions.fail_over)",
    )
    def post(self, request):
        data = FailoverRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = services.region_fail_over(
            to=data.validated_data["to"],
            reason=data.validated_data["reason"],
            force=data.validated_data["force"],
            pin=data.validated_data["pin"],
            actor=Actor.of_user(request.user),
            user=request.user,
        )
        return Response(FailoverEventSerializer(event).data, status=201)
