"""Regions admin: the ops view of who serves traffic, how healthy each region is, and the
buttons to move traffic. Every write goes through ``regions.services``."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from audit.admin_mixins import AuditedAdminMixin
from audit.services import Actor
from core.admin_helpers import ReadOnlyAdmin, short_text, short_time, status_pill
from core.durations import duration_text
from regions import routing, services
from regions.models import FailoverEvent, FailoverPolicy, GameDay, Probe, Region, RegionStatus

COLOURS = {
    RegionStatus.HEALTHY: "#1a7f37",
    RegionStatus.UNHEALTHY: "#cf222e",
    RegionStatus.UNKNOWN: "#6e7781",
}


class ChangedFieldsOnlyAdmin(admin.ModelAdmin):
    """Saves only what the person changed in the form.

    The admin loads the object at the start of the request and ``obj.save()`` would
    write every column back, including live state the prober and the gate own (the
    policy epoch, ``is_active``, the counters). A failover committing in between would
    be rolled back by the form, and the next failover would collide with the epoch it
    already used. So an edit is ``save(update_fields=<the changed form fields>)`` and
    the object is re-read afterwards (the audit mixin's "after" and the services that
    follow see the stored row)."""

    def save_model(self, request, obj, form, change):
        if not change:
            obj.save()
            return
        concrete = {f.name for f in obj._meta.concrete_fields if not f.primary_key}
        fields = [name for name in form.changed_data if name in concrete]
        if fields:
            obj.save(update_fields=fields)
        obj.refresh_from_db()


class RegionsAdmin(AuditedAdminMixin, ChangedFieldsOnlyAdmin):
    """Audited, changed-fields-only. Subclasses leave their live state (written by the
    prober and the gate, never by the form) out of ``audit_exclude``, so the before/after
    of an edit shows what the person changed, not a failover that committed meanwhile."""


ACTIVE_REFUSAL = "{name} is the active region: fail over to another region first."


class RegionForm(forms.ModelForm):
    # A base URL typed without a scheme means HTTPS (Django 6's default, chosen now).
    base_url = forms.URLField(
        assume_scheme="https", help_text=Region._meta.get_field("base_url").help_text
    )

    class Meta:
        model = Region
        fields = [
            "name",
            "slug",
            "base_url",
            "order",
            "enabled",
            "health_path",
            "probe_timeout",
            "expected_status",
            "body_contains",
            "drill_fail",
        ]

    def clean_enabled(self) -> bool:
        """Disabling the region that serves traffic would strand it: the gate could only
        fail over (or alert) after the fact. Ops move traffic first, on purpose."""
        enabled = self.cleaned_data["enabled"]
        instance = self.instance
        if not enabled and instance.pk and Region.objects.filter(pk=instance.pk, is_active=True).exists():
            raise forms.ValidationError(ACTIVE_REFUSAL.format(name=instance.name) + " Then disable it.")
        return enabled


class FailoverForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Why you move traffic: goes to the audit trail and the alert.",
    )
    force = forms.BooleanField(required=False, help_text="Move even though the region is not healthy.")
    pin = forms.BooleanField(
        required=False, help_text="Pin: automation will not move traffic away until the pin is released."
    )


@admin.register(Region)
class RegionAdmin(RegionsAdmin):
    form = RegionForm
    list_display = [
        "name",
        "active_badge",
        "status_badge",
        "latency",
        "fails",
        "uptime_24h",
        "last_check",
        "order",
        "enabled",
    ]
    list_filter = ["status", "is_active", "enabled"]
    search_fields = ["name", "slug", "base_url"]
    ordering = ["order", "pk"]
    actions = ["fail_over_to"]
    readonly_fields = [
        "is_active",
        "status",
        "status_changed_at",
        "consecutive_failures",
        "consecutive_successes",
        "failing_since",
        "last_checked_at",
        "last_latency_ms",
        "last_status_code",
        "last_error",
    ]
    fieldsets = [
        (None, {"fields": ["name", "slug", "base_url", "order", "enabled"]}),
        (
            "Probe",
            {"fields": ["health_path", "probe_timeout", "expected_status", "body_contains", "drill_fail"]},
        ),
        ("Live state", {"fields": [*readonly_fields]}),
    ]
    audit_exclude = {"last_login", "status_epoch", *readonly_fields}

    def get_queryset(self, request):
        since = timezone.now() - timedelta(days=1)
        return (
            super()
            .get_queryset(request)
            .annotate(
                probes_24h=Count("probes", filter=Q(probes__checked_at__gte=since)),
                ok_24h=Count("probes", filter=Q(probes__checked_at__gte=since, probes__ok=True)),
            )
        )

    @admin.display(description="Active", ordering="is_active")
    def active_badge(self, obj):
        return status_pill("ACTIVE", "#0969da") if obj.is_active else "standby"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return status_pill(obj.get_status_display(), COLOURS.get(obj.status, "#6e7781"))

    @admin.display(description="Latency", ordering="last_latency_ms")
    def latency(self, obj):
        return f"{obj.last_latency_ms:.0f} ms" if obj.last_latency_ms is not None else "–"

    @admin.display(description="Fails", ordering="consecutive_failures")
    def fails(self, obj):
        return obj.consecutive_failures

    @admin.display(description="Last check", ordering="last_checked_at")
    def last_check(self, obj):
        return short_time(obj.last_checked_at)

    @admin.display(description="Uptime 24 h")
    def uptime_24h(self, obj):
        if not getattr(obj, "probes_24h", 0):
            return "–"
        return f"{100 * obj.ok_24h / obj.probes_24h:.2f} %"

    def has_fail_over_permission(self, request) -> bool:
        return request.user.has_perm("regions.fail_over")

    @admin.action(description="Fail over to the selected region…", permissions=["fail_over"])
    def fail_over_to(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one region to fail over to.", messages.ERROR)
            return None
        return self._fail_over(request, queryset.get(), from_action=True)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/fail-over/",
                self.admin_site.admin_view(self.fail_over_view),
                name="regions_region_fail_over",
            ),
            *super().get_urls(),
        ]

    def fail_over_view(self, request, object_id):
        """The dashboard's "Fail over to…" control: the reason comes with the first POST,
        this page asks to confirm it (a GET asks for it), the second POST moves traffic
        through the same service as the admin action and the API, then goes back."""
        if not self.has_fail_over_permission(request):
            raise PermissionDenied
        region = self.get_object(request, unquote(object_id))
        if region is None:
            raise Http404("No such region.")
        return self._fail_over(request, region, from_action=False)

    def _fail_over(self, request, region, *, from_action: bool):
        confirmed = request.method == "POST" and "confirm" in request.POST
        form = FailoverForm(request.POST if request.method == "POST" and "reason" in request.POST else None)
        back = request.POST.get("next") or request.GET.get("next") or ""
        if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            back = ""
        if confirmed and form.is_valid():
            try:
                event = services.region_fail_over(
                    to=region,
                    reason=form.cleaned_data["reason"],
                    force=form.cleaned_data["force"],
                    pin=form.cleaned_data["pin"],
                    actor=Actor.of_user(request.user),
                    user=request.user,
                )
            except services.FailoverRefused as exc:
                form.add_error("force" if exc.field == "to" else exc.field, str(exc))
            else:
                self.message_user(request, f"Traffic moved: {event}.", messages.SUCCESS)
                if from_action:
                    return None
                return HttpResponseRedirect(back or reverse("admin:index"))
        return TemplateResponse(
            request,
            "admin/regions/region/failover_confirm.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Fail over to {region.name}",
                "opts": self.model._meta,
                "region": region,
                "active": Region.objects.filter(is_active=True).first(),
                "form": form,
                "from_action": from_action,
                "next": back,
                "cancel_url": back or reverse("admin:regions_region_changelist"),
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        transaction.on_commit(routing.publish)

    def delete_view(self, request, object_id, extra_context=None):
        """Deleting the active region would leave no region serving: refuse, say why."""
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and obj.is_active:
            self.message_user(request, ACTIVE_REFUSAL.format(name=obj.name) + " Then delete it.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:regions_region_change", args=[obj.pk]))
        return super().delete_view(request, object_id, extra_context)

    def get_deleted_objects(self, objs, request):
        """The bulk "delete selected" action: the active region is listed as protected,
        which blocks the whole deletion with the reason shown."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        active = [ACTIVE_REFUSAL.format(name=obj.name) for obj in objs if obj.is_active]
        return deleted, counts, perms_needed, [*protected, *active]


class PolicyForm(forms.ModelForm):
    release_pin = forms.BooleanField(
        required=False, label="Release the pin", help_text="Give the active region back to automation."
    )

    class Meta:
        model = FailoverPolicy
        fields = [
            "multi_region_enabled",
            "read_policy",
            "probe_interval_seconds",
            "failure_threshold",
            "recovery_threshold",
            "probe_retention_days",
            "auto_failback",
            "cooldown_seconds",
            "slo_target",
        ]


@admin.register(FailoverPolicy)
class FailoverPolicyAdmin(RegionsAdmin):
    form = PolicyForm
    list_display = ["__str__", "mode", "probing", "failback", "cooldown", "pinned", "slo"]
    readonly_fields = [
        "pinned_region",
        "pinned_by",
        "pinned_at",
        "pin_reason",
        "epoch",
        "last_failover_at",
        "stranded_since",
        "stranded_reason",
    ]
    fieldsets = [
        (None, {"fields": ["multi_region_enabled", "read_policy"]}),
        (
            "Probing",
            {
                "fields": [
                    "probe_interval_seconds",
                    "failure_threshold",
                    "recovery_threshold",
                    "probe_retention_days",
                ]
            },
        ),
        ("Failover", {"fields": ["auto_failback", "cooldown_seconds", "slo_target"]}),
        ("Pin", {"fields": ["pinned_region", "pinned_by", "pinned_at", "pin_reason", "release_pin"]}),
        ("State", {"fields": ["epoch", "last_failover_at", "stranded_since", "stranded_reason"]}),
    ]
    audit_exclude = {"last_login", *readonly_fields}

    def has_add_permission(self, request):
        return not FailoverPolicy.objects.exists() and super().has_add_permission(request)

    @admin.display(description="Mode", ordering="multi_region_enabled")
    def mode(self, obj):
        return "multi-region" if obj.multi_region_enabled else "single-region"

    @admin.display(description="Probing")
    def probing(self, obj):
        return (
            f"every {duration_text(obj.probe_interval_seconds)}; unhealthy after {obj.failure_threshold} failed, "
            f"healthy after {obj.recovery_threshold} good"
        )

    @admin.display(description="Failback", ordering="auto_failback")
    def failback(self, obj):
        return "automatic" if obj.auto_failback else "by hand"

    @admin.display(description="Cooldown", ordering="cooldown_seconds")
    def cooldown(self, obj):
        return duration_text(obj.cooldown_seconds)

    @admin.display(description="Pinned")
    def pinned(self, obj):
        if obj.pinned_region is None:
            return "–"
        return format_html(
            '<span style="white-space:nowrap" title="{}">{} (by {})</span>',
            obj.pin_reason,
            obj.pinned_region.name,
            obj.pinned_by or "ops",
        )

    @admin.display(description="SLO", ordering="slo_target")
    def slo(self, obj):
        return f"{obj.slo_target:.2f} %"

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        obj.pk = 1
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get("release_pin"):
            services.policy_release_pin(actor=Actor.of_user(request.user))
            self.message_user(request, "Pin released: automation may move traffic again.")
        services.policy_changed(policy=obj)


@admin.register(FailoverEvent)
class FailoverEventAdmin(ReadOnlyAdmin):
    list_display = ["decided", "kind", "move", "actor", "short_reason", "flags", "failing_for"]
    list_filter = ["kind", "forced", "pinned"]
    search_fields = ["reason", "actor"]
    list_select_related = ["from_region", "to_region"]
    date_hierarchy = "decided_at"

    @admin.display(description="Decided", ordering="decided_at")
    def decided(self, obj):
        return short_time(obj.decided_at)

    @admin.display(description="Move")
    def move(self, obj):
        return format_html(
            '<span style="white-space:nowrap">{} → {}</span>', obj.from_region or "(none)", obj.to_region or "(gone)"
        )

    @admin.display(description="Reason")
    def short_reason(self, obj):
        return short_text(obj.reason, 32)

    @admin.display(description="Forced · pinned")
    def flags(self, obj):
        return ", ".join(word for word, on in (("forced", obj.forced), ("pinned", obj.pinned)) if on) or "–"

    @admin.display(description="Failing for", ordering="failing_since")
    def failing_for(self, obj):
        if obj.failing_since is None:
            return "–"
        return duration_text((obj.decided_at - obj.failing_since).total_seconds())


@admin.register(Probe)
class ProbeAdmin(ReadOnlyAdmin):
    list_display = ["checked_at", "region", "ok", "status_code", "latency_ms", "error", "was_active"]
    list_filter = ["ok", "region", "was_active"]
    list_select_related = ["region"]
    date_hierarchy = "checked_at"
    show_full_result_count = False


def _game_day_verdict(game: GameDay) -> str:
    """Pass or fail against the RTO target, and why: the verdict ``gameday`` stored, or,
    for a drill stored without one, the same judgement made now."""
    if game.notes:
        return game.notes
    target = duration_text(settings.REGIONS_RTO_TARGET_SECONDS)
    if game.switched_after_s is None:
        return "no failover happened"
    rto = duration_text(game.switched_after_s)
    met = game.switched_after_s <= settings.REGIONS_RTO_TARGET_SECONDS
    return f"RTO {rto} {'within' if met else 'missed'} the {target} target"


@admin.register(GameDay)
class GameDayAdmin(ReadOnlyAdmin):
    list_display = ["started", "region", "method", "detection", "rto", "switched_to", "result"]
    list_select_related = ["region", "switched_to"]
    fieldsets = [
        (None, {"fields": ["started_at", "region", "method"]}),
        ("Result", {"fields": ["verdict", "detection", "rto", "rto_target", "switched_to"]}),
    ]
    readonly_fields = ["verdict", "detection", "rto", "rto_target"]

    @admin.display(description="Started", ordering="started_at")
    def started(self, obj):
        return short_time(obj.started_at)

    @admin.display(description="Detected after", ordering="detected_after_s")
    def detection(self, obj):
        return duration_text(obj.detected_after_s) if obj.detected_after_s is not None else "not detected"

    @admin.display(description="RTO", ordering="switched_after_s")
    def rto(self, obj):
        return duration_text(obj.switched_after_s) if obj.switched_after_s is not None else "no failover"

    @admin.display(description="RTO target")
    def rto_target(self, obj):
        return f"{duration_text(settings.REGIONS_RTO_TARGET_SECONDS)} (REGIONS_RTO_TARGET_SECONDS)"

    @admin.display(description="Result", ordering="succeeded")
    def result(self, obj):
        return format_html("{} {}", _pass_fail(obj), short_text(_game_day_verdict(obj), 70))

    @admin.display(description="Result")
    def verdict(self, obj):
        return format_html("{} {}", _pass_fail(obj), _game_day_verdict(obj))


def _pass_fail(game: GameDay):
    if game.succeeded:
        return status_pill("Passed", COLOURS[RegionStatus.HEALTHY])
    return status_pill("Failed", COLOURS[RegionStatus.UNHEALTHY])
