"""Usage in admin: events (read-only, searchable), counters, threshold crossings, and the
monitor's runs with a "run a dry run now" button and action."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.admin import CompanyAdmin
from accounts.models import Company
from billing.plans.models import Feature, TierLimit
from core.admin_helpers import ReadOnlyAdmin, bullet_list, short_time, status_pill
from core.durations import duration_text
from usage.admin_widgets import bars
from usage.models import MonitorRun, ThresholdCrossing, UsageCounter, UsageEvent
from usage.monitor import usage_monitor_run
from usage.selectors import Level, companies_at_usage_level, usage_levels


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
    list_display = [
        "created_at", "company", "feature", "level_percent", "used", "included", "period_start", "notified", "source",
        "run",
    ]
    list_filter = ["source", "level", "feature", "notified"]
    search_fields = ["company__name", "=company__slug"]
    list_select_related = ["company", "feature", "run"]

    @admin.display(description="level", ordering="level")
    def level_percent(self, crossing):
        return f"{crossing.level} %"


RUN_COLOURS = {"succeeded": "#2e7d32", "failed": "#c62828", "running": "#1565c0", "abandoned": "#6d4c41"}
TRIGGERS = {"beat": "scheduled", "command": "by hand (command)", "admin": "by hand (admin)"}


def _cell(column: str, value):
    """One report cell as people read it: a list as a list, a share in percent, counts grouped."""
    if isinstance(value, list | tuple):
        return bullet_list(value)
    if column == "percent" and isinstance(value, int | float):
        return f"{value:g} %"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else value


@admin.register(MonitorRun)
class MonitorRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "started",
        "what",
        "coloured_status",
        "companies",
        "warnings",
        "breaches",
        "new_found",
        "duration",
    ]
    list_filter = ["status", "dry_run", "trigger"]
    actions = ["run_dry_run_now"]
    fieldsets = [
        (None, {"fields": ["status", "dry_run", "started_by", "started_at", "finished_at", "duration", "error"]}),
        (
            "Found",
            {
                "fields": [
                    "companies_scanned", "warnings", "breaches", "new_warnings", "new_breaches", "new_tasks",
                    "missed_by_ingest",
                ]
            },
        ),
        ("Report", {"fields": ["worst_offenders", "new_crossings"]}),
    ]
    readonly_fields = ["started_by", "duration", "worst_offenders", "new_crossings"]

    @admin.display(description="started", ordering="started_at")
    def started(self, run):
        return short_time(run.started_at)

    @admin.display(description="started by", ordering="trigger")
    def started_by(self, run):
        return TRIGGERS.get(run.trigger, run.trigger)

    @admin.display(description="run", ordering="trigger")
    def what(self, run):
        return f"{self.kind(run)}, {self.started_by(run)}"

    @admin.display(description="companies", ordering="companies_scanned")
    def companies(self, run):
        return run.companies_scanned

    @admin.display(description="new")
    def new_found(self, run):
        return format_html(
            '<span style="white-space:nowrap">{} warnings · {} breaches · {} tasks · {} missed</span>',
            run.new_warnings,
            run.new_breaches,
            run.new_tasks,
            run.missed_by_ingest,
        )

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, run):
        return "–" if run.duration_ms is None else duration_text(run.duration_ms / 1000)

    @admin.display(description="kind", boolean=False)
    def kind(self, run):
        return "dry run" if run.dry_run else "run"

    @admin.display(description="status", ordering="status")
    def coloured_status(self, run):
        return status_pill(run.get_status_display(), RUN_COLOURS.get(run.status, "#555"))

    def _table(self, rows, columns):
        if not rows:
            return "—"
        head = format_html_join("", "<th>{}</th>", ((c,) for c in columns))
        body = format_html_join(
            "",
            "<tr>{}</tr>",
            ((format_html_join("", "<td>{}</td>", ((_cell(c, r.get(c)),) for c in columns)),) for r in rows),
        )
        return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)

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


class UsageLevelFilter(admin.SimpleListFilter):
    """Companies with a feature at warning level, or over its limit, this period."""

    title = "usage"
    parameter_name = "usage"

    def lookups(self, request, model_admin):
        return [(Level.WARNING, "At warning level"), (Level.EXCEEDED, "Over a limit")]

    def queryset(self, request, queryset):
        level = self.value()
        if level is None or level not in (Level.WARNING, Level.EXCEEDED):
            return queryset
        return companies_at_usage_level(queryset, level=level)


def _attach_usage(companies: list[Company]) -> None:
    if not companies:
        return
    now = timezone.now()
    used = {
        (c.company_id, c.feature_id): c.used
        for c in UsageCounter.objects.filter(
            company__in=companies, period_start__lte=now, period_end__gt=now
        ).only("company_id", "feature_id", "used")
    }
    # The plugin types Company.tier_id as optional (the column has a default), so the key allows None.
    limits: dict[tuple[int | None, int], int | None] = {
        (lim.tier_id, lim.feature_id): lim.included
        for lim in TierLimit.objects.filter(tier__in={c.tier_id for c in companies})
    }
    levels = {
        (company_id, feature_id): level
        for company_id, feature_id, level in usage_levels(now=now)
        .filter(company__in=companies)
        .values_list("company_id", "feature_id", "level")
    }
    features = list(Feature.objects.all())
    for company in companies:
        items = []
        for feature in features:
            count = used.get((company.pk, feature.pk), 0)
            included = limits.get((company.tier_id, feature.pk))
            items.append(
                {
                    "name": feature.name,
                    "used": count,
                    "included": included,
                    "level": levels.get((company.pk, feature.pk), Level.OK),
                }
            )
        company._usage = items  # type: ignore[attr-defined]  # a per-row cache for the usage column


admin.site.unregister(Company)


@admin.register(Company)
class CompanyUsageAdmin(CompanyAdmin):
    """Companies with this period's usage beside each: bars in the list and on the page,
    and a filter for who is at warning level or over a limit."""

    list_display = ["name", "tier", "coloured_status", "usage", "billing_anchor_day", "created_at"]
    list_filter = ["tier", "status", UsageLevelFilter]
    fieldsets = [
        (None, {"fields": ["name", "slug"]}),
        ("Plan", {"fields": ["tier", "status", "billing_anchor_day", "usage"]}),
    ]
    readonly_fields = ["status", "usage"]

    def get_readonly_fields(self, request, obj=None):
        # Usage is counted per period, and the anchor day defines the periods: moving it
        # under a company with usage would start a fresh, empty period mid-month.
        if obj is not None and UsageCounter.objects.filter(company=obj).exists():
            return [*self.readonly_fields, "billing_anchor_day"]
        return self.readonly_fields

    def get_changelist_instance(self, request):
        """Load this page's usage in three queries, not three per company."""
        changelist = super().get_changelist_instance(request)
        _attach_usage(list(changelist.result_list))
        return changelist

    @admin.display(description="usage this period")
    def usage(self, company):
        if company.pk is None:
            return "—"
        if not hasattr(company, "_usage"):
            _attach_usage([company])
        return bars(company._usage)
