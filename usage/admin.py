"""Usage in admin: events (read-only, searchable), counters, threshold crossings, and the
monitor's runs with a "run a dry run now" button and action."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from trans_bot.admin_utils import ReadOnlyAdmin
from usage.admin_widgets import status_pill
from usage.models import MonitorRun, ThresholdCrossing, UsageCounter, UsageEvent
from usage.services import usage_monitor_run


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "company", "feature", "quantity", "idempotency_key", "occurred_at", "received_at"]
    list_filter = ["feature"]
    search_fields = ["=idempotency_key", "company__name", "=company__slug"]
    list_select_related = ["company", "feature"]
    show_full_result_count = False
    raw_id_fields = ["company", "api_key"]


@admin.register(UsageCounter)
class UsageCounterAdmin(ReadOnlyAdmin):
    list_display = ["company", "feature", "period_start", "period_end", "used", "updated_at"]
    list_filter = ["feature", "period_start"]
    search_fields = ["company__name", "=company__slug"]
    list_select_related = ["company", "feature"]
    show_full_result_count = False


@admin.register(ThresholdCrossing)
class ThresholdCrossingAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "company", "feature", "level", "used", "included", "period_start", "notified", "run"]
    list_filter = ["level", "feature", "notified"]
    search_fields = ["company__name", "=company__slug"]
    list_select_related = ["company", "feature", "run"]


RUN_COLOURS = {"succeeded": "#2e7d32", "failed": "#c62828", "running": "#1565c0", "abandoned": "#6d4c41"}


@admin.register(MonitorRun)
class MonitorRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "started_at",
        "kind",
        "coloured_status",
        "companies_scanned",
        "warnings",
        "breaches",
        "new_warnings",
        "new_breaches",
        "new_tasks",
        "duration_ms",
        "trigger",
    ]
    list_filter = ["status", "dry_run", "trigger"]
    actions = ["run_dry_run_now"]
    fieldsets = [
        (None, {"fields": ["status", "dry_run", "trigger", "started_at", "finished_at", "duration_ms", "error"]}),
        (
            "Found",
            {"fields": ["companies_scanned", "warnings", "breaches", "new_warnings", "new_breaches", "new_tasks"]},
        ),
        ("Report", {"fields": ["worst_offenders", "new_crossings"]}),
    ]
    readonly_fields = ["worst_offenders", "new_crossings"]

    @admin.display(description="kind", boolean=False)
    def kind(self, run):
        return "dry run" if run.dry_run else "run"

    @admin.display(description="status", ordering="status")
    def coloured_status(self, run):
        return status_pill(run.get_status_display(), RUN_COLOURS.get(run.status, "#555"))

    def _table(self, rows, columns):
        if not rows:
            return "—"
        head = "".join(f"<th>{c}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{format_html('{}', r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows
        )
        return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", _safe(head), _safe(body))

    @admin.display(description="worst offenders")
    def worst_offenders(self, run):
        return self._table(
            run.report.get("worst_offenders", []), ["company", "feature", "level", "percent", "used", "included"]
        )

    @admin.display(description="new crossings")
    def new_crossings(self, run):
        return self._table(
            run.report.get("new_crossings", []), ["company", "feature", "levels", "percent", "used", "included"]
        )

    def get_urls(self):
        return [
            path(
                "run-dry-run/",
                self.admin_site.admin_view(self.dry_run_view),
                name="usage_monitorrun_dry_run",
            ),
            *super().get_urls(),
        ]

    def _dry_run(self, request) -> MonitorRun:
        run = usage_monitor_run(dry_run=True, trigger="admin")
        self.message_user(
            request,
            f"Dry run #{run.pk}: {run.companies_scanned} companies, would open "
            f"{run.new_warnings + run.new_breaches} tasks ({run.new_breaches} breaches, "
            f"{run.new_warnings} warnings). Nothing was created or sent.",
            messages.SUCCESS,
        )
        return run

    def dry_run_view(self, request):
        if request.method != "POST" or not self.has_view_permission(request):
            return HttpResponseRedirect(reverse("admin:usage_monitorrun_changelist"))
        run = self._dry_run(request)
        return HttpResponseRedirect(reverse("admin:usage_monitorrun_change", args=[run.pk]))

    @admin.action(description="Run a dry run now (creates and sends nothing)")
    def run_dry_run_now(self, request, queryset):
        self._dry_run(request)


def _safe(html: str):
    from django.utils.safestring import mark_safe

    return mark_safe(html)  # noqa: S308 - every cell was escaped by format_html above
