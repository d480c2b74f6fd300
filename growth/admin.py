"""Experiments in admin: variants inline (editable only while draft), start/stop actions,
results with their test against control, and "ship a winner". Every edit is audited."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from audit.admin_mixins import AuditedInlinesMixin
from audit.services import Actor
from core.admin_helpers import ReadOnlyAdmin
from core.errors import ApplicationError
from growth.models import Booking, Experiment, ExperimentStatus, Variant
from growth.selectors import experiment_results, results_sentence
from growth.services import (
    ExperimentLocked,
    experiment_assert_editable,
    experiment_ship,
    experiment_start,
    experiment_stop,
)


class VariantFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        if not self.has_changed():
            return
        try:
            experiment_assert_editable(experiment=self.instance)
        except ExperimentLocked as error:
            raise ValidationError(error.message) from None


class VariantInline(admin.TabularInline):
    model = Variant
    formset = VariantFormSet
    extra = 0
    fields = ["key", "is_control", "weight", "headline", "call_to_action", "highlighted_tier", "threshold_percent"]

    def _locked(self, obj):
        return obj is not None and obj.status != ExperimentStatus.DRAFT

    def has_add_permission(self, request, obj=None):
        return not self._locked(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not self._locked(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._locked(obj) and super().has_delete_permission(request, obj)


class ExperimentForm(forms.ModelForm):
    class Meta:
        model = Experiment
        fields = ["key", "name", "placement", "conversion_window_days", "holdout_share"]

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk is not None and {"key", "holdout_share", "placement"} & set(self.changed_data):
            try:
                experiment_assert_editable(experiment=self.instance)
            except ExperimentLocked as error:
                raise ValidationError(error.message) from None
        return cleaned


@admin.register(Experiment)
class ExperimentAdmin(AuditedInlinesMixin, admin.ModelAdmin):
    form = ExperimentForm
    list_display = ["name", "key", "placement", "status_badge", "starts_at", "stops_at", "winner"]
    list_filter = ["status", "placement"]
    search_fields = ["name", "key"]
    list_select_related = ["winner"]
    inlines = [VariantInline]
    actions = ["start_selected", "stop_selected"]
    fieldsets = [
        (None, {"fields": ["name", "key", "placement"]}),
        ("Measurement", {"fields": ["conversion_window_days", "holdout_share"]}),
        ("Life", {"fields": ["status", "starts_at", "stops_at", "winner"]}),
        ("Results", {"fields": ["results"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        locked = ["key", "placement", "holdout_share"] if obj is not None and obj.status != "draft" else []
        return ["status", "starts_at", "stops_at", "winner", "results", *locked]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        colour = {"running": "#2e7d32", "shipped": "#1565c0", "stopped": "#777", "draft": "#b26a00"}[obj.status]
        return format_html('<b style="color:{}">{}</b>', colour, obj.get_status_display())

    @admin.display(description="results")
    def results(self, obj):
        if obj.pk is None:
            return "—"
        rows = experiment_results(obj)
        if not rows:
            return "No variants yet."

        def cells(r):
            diff = "control" if r.comparison is None else f"{r.comparison.difference * 100:+.1f} pts"
            p = "" if r.comparison is None or r.comparison.p_value is None else f"{r.comparison.p_value:.3f}"
            return (
                "holdout (no prompt)" if r.is_holdout else r.key,
                r.exposed,
                r.converted,
                f"{r.rate * 100:.1f} %",
                f"{r.low * 100:.1f} – {r.high * 100:.1f} %",
                diff,
                p,
                f"{r.revenue_uplift / 100:.2f}",
            )

        table = format_html(
            "<table><thead><tr><th>variant</th><th>exposed</th><th>converted</th><th>rate</th><th>95 % CI</th>"
            "<th>vs control</th><th>p</th><th>monthly uplift</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "", "<tr>" + "<td>{}</td>" * 8 + "</tr>", (cells(r) for r in rows)
            ),
        )
        ship = ""
        if obj.status in (ExperimentStatus.RUNNING, ExperimentStatus.STOPPED):
            ship = format_html(
                '<p><a class="button" href="{}">Ship a winner…</a></p>',
                reverse("admin:growth_experiment_ship", args=[obj.pk]),
            )
        return format_html("<p>{}</p>{}{}", results_sentence(rows), table, ship)

    @admin.action(description="Start the selected experiments")
    def start_selected(self, request, queryset):
        actor = Actor.of_user(request.user)
        self._each(request, queryset, lambda e: experiment_start(experiment=e, actor=actor), "started")

    @admin.action(description="Stop the selected experiments")
    def stop_selected(self, request, queryset):
        actor = Actor.of_user(request.user)
        self._each(request, queryset, lambda e: experiment_stop(experiment=e, actor=actor), "stopped")

    def _each(self, request, queryset, do, verb):
        for experiment in queryset:
            try:
                do(experiment)
            except ApplicationError as error:
                self.message_user(request, f"{experiment.key}: {error.message}", messages.ERROR)
            else:
                self.message_user(request, f"{experiment.key}: {verb}.", messages.SUCCESS)

    def get_urls(self):
        extra = [
            path(
                "<int:pk>/ship/",
                self.admin_site.admin_view(self.ship_view),
                name="growth_experiment_ship",
            )
        ]
        return extra + super().get_urls()

    def ship_view(self, request, pk):
        experiment = get_object_or_404(Experiment, pk=pk)
        if not self.has_change_permission(request, experiment):
            raise PermissionDenied
        variants = list(experiment.variants.order_by("key"))
        if request.method == "POST":
            variant = next((v for v in variants if str(v.pk) == request.POST.get("variant")), None)
            if variant is None:
                self.message_user(request, "Choose the winning variant.", messages.ERROR)
            else:
                try:
                    experiment_ship(experiment=experiment, variant=variant, actor=Actor.of_user(request.user))
                except ApplicationError as error:
                    self.message_user(request, error.message, messages.ERROR)
                else:
                    self.message_user(
                        request,
                        f"Shipped {variant.key}: the default prompt on the {experiment.get_placement_display()}.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(reverse("admin:growth_experiment_change", args=[experiment.pk]))
        rows = experiment_results(experiment)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Ship a winner of {experiment.name}",
            "experiment": experiment,
            "variants": variants,
            "sentence": results_sentence(rows),
        }
        return TemplateResponse(request, "admin/growth/ship.html", context)


@admin.register(Booking)
class BookingAdmin(ReadOnlyAdmin):
    """The booking feed as the product sent it (quote→book on the dashboard reads it)."""

    list_display = ["occurred_at", "company", "quantity", "idempotency_key", "received_at"]
    list_filter = ["occurred_at"]
    search_fields = ["company__name", "company__slug", "idempotency_key"]
    list_select_related = ["company"]
    date_hierarchy = "occurred_at"
    readonly_fields = [f.name for f in Booking._meta.fields]
