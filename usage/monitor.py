"""The nightly monitor: every company's usage against its limits, once a night at 02:00 UTC.

Each crossing (company, feature, period, level) is recorded once (a unique constraint and
INSERT ... ON CONFLICT), so a rerun, a second worker or a dry run never alerts twice; a run
that dies is found by the next one and closed as abandoned.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils import timezone

from accounts.models import Company, CompanyStatus
from accounts.selectors import company_owner_emails
from audit.services import Actor, audit_record
from billing.plans.models import Feature
from core.links import absolute_url, admin_url
from ops.services import notify, ops_task_open
from usage.extensions import warning_email_extras
from usage.models import (
    MonitorRun,
    MonitorRunStatus,
    ThresholdCrossing,
)
from usage.selectors import usage_levels

log = logging.getLogger(__name__)


class CrossingLevel:
    WARNING = "warning"
    EXCEEDED = "exceeded"


_PERCENT = {CrossingLevel.WARNING: 80, CrossingLevel.EXCEEDED: 100}

MONITOR_ACTOR = Actor.system("usage-monitor")
# A run still "running" after this long died (killed worker, lost machine).
STALE_RUN_AFTER = timedelta(hours=1)
WORST_OFFENDERS = 10

_INSERT_CROSSING_SQL = """
INSERT INTO usage_thresholdcrossing
    (company_id, feature_id, period_start, level, used, included, notified, run_id, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (company_id, feature_id, period_start, level) DO NOTHING
RETURNING id
"""


@dataclass
class Candidate:
    company_id: int
    feature_id: int
    period_start: datetime
    period_end: datetime
    used: int
    included: int
    level: str
    has_warning: bool
    has_exceeded: bool

    @property
    def percent(self) -> float:
        return round(self.used * 100 / self.included, 1) if self.included else float("inf")

    def new_levels(self) -> list[str]:
        levels: list[str] = []
        if not self.has_warning:
            levels.append(CrossingLevel.WARNING)
        if self.level == CrossingLevel.EXCEEDED and not self.has_exceeded:
            levels.append(CrossingLevel.EXCEEDED)
        return levels


def monitor_candidates(*, now: datetime) -> list[Candidate]:
    """Every company/feature/period at warning level or over its limit by ``usage_levels``
    (the rule the dashboard and the company filter read), in one aggregate query over
    counters joined with limits: its cost follows the number of companies (counters),
    never the number of events. Periods that closed within the last day plus the grace
    window are included, so a crossing in a period's last hours is not missed."""
    since = now - timedelta(days=1, hours=settings.USAGE_GRACE_HOURS)
    crossed = ThresholdCrossing.objects.filter(
        company=OuterRef("company"), feature=OuterRef("feature"), period_start=OuterRef("period_start")
    )
    rows = (
        usage_levels(now=now, since=since)
        .annotate(
            has_warning=Exists(crossed.filter(level=_PERCENT[CrossingLevel.WARNING])),
            has_exceeded=Exists(crossed.filter(level=_PERCENT[CrossingLevel.EXCEEDED])),
        )
        .order_by("company_id", "feature_id", "period_start")
        .values_list(
            "company_id", "feature_id", "period_start", "period_end", "used", "included", "level",
            "has_warning", "has_exceeded",
        )
    )
    return [Candidate(*row) for row in rows]


def account_usage_url(company: Company) -> str:
    """The company's usage page in the account pages (the link in the owners' e-mails)."""
    return absolute_url(reverse("customers:usage") + "?" + urlencode({"company": company.slug}))


def _act_on_crossing(
    *, candidate: Candidate, level: str, crossing: ThresholdCrossing, company: Company, feature: Feature
) -> None:
    """The ops task, the audit record and the owners' e-mail for one new crossing; called
    in the transaction that inserted the crossing, so they commit together or not at all."""
    period = f"{candidate.period_start:%Y-%m-%d}"
    exceeded = level == CrossingLevel.EXCEEDED
    limit_text = f"{candidate.used:,} of {candidate.included:,} {feature.unit}s ({candidate.percent:g} %)"
    title = (
        f"{company.name} exceeded its {feature.name.lower()} limit"
        if exceeded
        else f"{company.name} is at {candidate.percent:g} % of its {feature.name.lower()} limit"
    )
    dedup = f"usage.{level}:{company.pk}:{feature.code}:{period}"
    details = (
        f"{company.name} ({company.tier.name}) used {limit_text} in the period starting {period}. "
        + (
            "Overage is billed per unit; offer an upgrade if it keeps happening."
            if exceeded
            else "Consider reaching out about an upgrade before the limit is reached."
        )
    )
    ops_task_open(
        kind=f"usage.{'breach' if exceeded else 'warning'}",
        title=title,
        details=details,
        severity="high" if exceeded else "medium",
        company=company,
        target=crossing,
        dedup_key=dedup,
    )
    audit_record(
        action=f"usage.threshold.{level}",
        actor=MONITOR_ACTOR,
        target=crossing,
        company=company,
        details={
            "feature": feature.code,
            "period_start": candidate.period_start,
            "used": candidate.used,
            "included": candidate.included,
            "percent": candidate.percent,
        },
    )
    owners = company_owner_emails(company)
    if owners:
        notify(
            kind=f"usage.{'breach' if exceeded else 'warning'}",
            title=(
                f"You have exceeded your {feature.name.lower()} limit"
                if exceeded
                else f"You have used {candidate.percent:g} % of your {feature.name.lower()}"
            ),
            text=(
                f"{company.name} has used {limit_text} this billing period "
                f"(since {period}, plan {company.tier.name}). "
                + (
                    "Usage beyond the limit is billed per unit. "
                    if exceeded
                    else "Usage beyond the limit will be billed per unit. "
                )
                + f"See your usage and compare plans: {account_usage_url(company)}"
                + "".join(f"\n\n{p}" for p in warning_email_extras(company=company, percent=candidate.percent))
            ),
            severity="warning" if not exceeded else "critical",
            company=company,
            dedup_key=f"{dedup}:owners",
            slack=False,
            email_to=owners,
            fields={"Feature": feature.name, "Used": limit_text, "Plan": company.tier.name},
        )


def _record_crossings(*, run: MonitorRun, batch: list[tuple[Candidate, list[str]]], now: datetime) -> int:
    """Insert one batch of crossings and act on the ones this run inserted (a concurrent
    or earlier run that got there first has acted already). Returns the tasks opened."""
    companies = Company.objects.select_related("tier").in_bulk({c.company_id for c, _ in batch})
    features = Feature.objects.in_bulk({c.feature_id for c, _ in batch})
    tasks = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for candidate, levels in batch:
            top = levels[-1]
            for level in levels:
                cursor.execute(
                    _INSERT_CROSSING_SQL,
                    [
                        candidate.company_id,
                        candidate.feature_id,
                        connection.ops.adapt_datetimefield_value(candidate.period_start),
                        _PERCENT[level],
                        candidate.used,
                        candidate.included,
                        level == top,
                        run.pk,
                        connection.ops.adapt_datetimefield_value(now),
                    ],
                )
                row = cursor.fetchone()
                if row is None or level != top:
                    continue
                crossing = ThresholdCrossing.objects.get(pk=row[0])
                _act_on_crossing(
                    candidate=candidate,
                    level=level,
                    crossing=crossing,
                    company=companies[candidate.company_id],
                    feature=features[candidate.feature_id],
                )
                tasks += 1
    return tasks


def _report(*, candidates: list[Candidate], new: list[tuple[Candidate, list[str]]], now: datetime) -> dict:
    names = dict(
        Company.objects.filter(pk__in={c.company_id for c in candidates}).values_list("pk", "name")
    ) if candidates else {}
    codes = dict(Feature.objects.values_list("pk", "code"))
    current = [c for c in candidates if c.period_end > now]
    worst = sorted(current, key=lambda c: (-c.percent, c.company_id))[:WORST_OFFENDERS]

    def row(c: Candidate, **extra: Any) -> dict[str, Any]:
        return {
            "company_id": c.company_id,
            "company": names.get(c.company_id, ""),
            "feature": codes.get(c.feature_id, ""),
            "period_start": c.period_start.isoformat(),
            "used": c.used,
            "included": c.included,
            "percent": c.percent,
            **extra,
        }

    return {
        "worst_offenders": [row(c, level=c.level) for c in worst],
        "new_crossings": [row(c, levels=levels) for c, levels in new[:500]],
        "new_crossings_total": len(new),
    }


def _abandon_stale_runs(now: datetime) -> int:
    stale = list(
        MonitorRun.objects.filter(status=MonitorRunStatus.RUNNING, started_at__lt=now - STALE_RUN_AFTER)
    )
    for dead in stale:
        with transaction.atomic():
            if not MonitorRun.objects.filter(pk=dead.pk, status=MonitorRunStatus.RUNNING).update(
                status=MonitorRunStatus.ABANDONED,
                error="Did not finish (the process died); a later run redid its work.",
            ):
                continue
            if not dead.dry_run:
                _monitor_run_task(
                    run=dead,
                    what="died midway",
                    details=(
                        f"Monitor run #{dead.pk}, started {dead.started_at:%Y-%m-%d %H:%M} UTC, never finished: "
                        "the process running it died. The run starting now redoes its work (nothing is "
                        "done twice). Check the worker's log around that time for why it died."
                    ),
                    severity="medium",
                )
    return len(stale)


def _monitor_run_task(*, run: MonitorRun, what: str, details: str, severity: str) -> None:
    """The ``usage.monitor_run`` task the README promises when a run fails or dies."""
    ops_task_open(
        kind="usage.monitor_run",
        title=f"Usage monitor run #{run.pk} {what}",
        details=details,
        severity=severity,
        target=run,
        dedup_key=f"usage.monitor_run.{what.split()[0]}:{run.pk}",
    )


def usage_monitor_run(*, dry_run: bool = False, trigger: str = "manual") -> MonitorRun:
    """Scan every company's usage, act once on each new threshold crossing, report the run.

    Safe to run again at any time, including after a run died midway: crossings are
    recorded under a unique constraint in the same transaction as their task, audit record
    and e-mail, so work already done is skipped and work lost is redone. A dry run computes
    the same report and writes nothing but its own run record."""
    started = time.monotonic()
    now = timezone.now()
    _abandon_stale_runs(now)
    run = MonitorRun.objects.create(started_at=now, dry_run=dry_run, trigger=trigger)
    try:
        candidates = monitor_candidates(now=now)
        new = [(c, levels) for c in candidates if (levels := c.new_levels())]
        current = [c for c in candidates if c.period_end > now]
        run.companies_scanned = Company.objects.exclude(status=CompanyStatus.CANCELED).count()
        run.warnings = sum(1 for c in current if c.level == CrossingLevel.WARNING)
        run.breaches = sum(1 for c in current if c.level == CrossingLevel.EXCEEDED)
        run.new_breaches = sum(1 for _, levels in new if levels[-1] == CrossingLevel.EXCEEDED)
        run.new_warnings = len(new) - run.new_breaches
        run.report = _report(candidates=candidates, new=new, now=now)
        if not dry_run:
            size = max(1, settings.USAGE_MONITOR_BATCH)
            for i in range(0, len(new), size):
                run.new_tasks += _record_crossings(run=run, batch=new[i : i + size], now=now)
        run.duration_ms = int((time.monotonic() - started) * 1000)
        run.finished_at = timezone.now()
        run.status = MonitorRunStatus.SUCCEEDED
        with transaction.atomic():
            run.save()
            if not dry_run:
                _post_run_summary(run)
    except Exception as exc:
        log.exception("usage monitor run %s failed", run.pk)
        error = f"{type(exc).__name__}: {exc}"[:5000]
        MonitorRun.objects.filter(pk=run.pk).update(
            status=MonitorRunStatus.FAILED,
            finished_at=timezone.now(),
            duration_ms=int((time.monotonic() - started) * 1000),
            new_tasks=run.new_tasks,
            error=error,
        )
        if not dry_run:
            try:
                with transaction.atomic():
                    _monitor_run_task(
                        run=run,
                        what="failed",
                        details=(
                            f"Monitor run #{run.pk} ({trigger}) stopped with: {error}\n"
                            f"It had committed {run.new_tasks} new task(s) before that; crossings it did not "
                            "reach have not been acted on yet. Read the run in admin, fix the cause, then run "
                            "`manage.py run_usage_monitor --dry-run` and, if that looks right, "
                            "`manage.py run_usage_monitor` (nothing already done is done twice)."
                        ),
                        severity="high",
                    )
            except Exception:  # the database itself may be what failed: the log keeps it
                log.exception("could not open the ops task for failed monitor run %s", run.pk)
        raise
    return run


def _post_run_summary(run: MonitorRun) -> None:
    """One Slack message per run: counts, worst offenders, a link to the run."""
    worst = run.report.get("worst_offenders", [])[:5]
    lines = [
        f"• {w['company']} — {w['feature']} {w['percent']:g} % ({w['used']:,}/{w['included']:,})" for w in worst
    ]
    severity = "warning" if run.new_breaches else "info"
    notify(
        kind="usage.monitor_run",
        title=(
            f"Usage monitor: {run.new_breaches} new breaches, {run.new_warnings} new warnings "
            f"({run.companies_scanned:,} companies)"
        ),
        text="\n".join(
            [
                f"{run.breaches} over their limit and {run.warnings} at warning level now; "
                f"{run.new_tasks} new ops tasks.",
                *(["Worst offenders:", *lines] if lines else ["Nobody is near a limit."]),
            ]
        ),
        severity=severity,
        link=admin_url(run),
        dedup_key=f"usage.monitor_run:{run.pk}",
        email_to=[],
        fields={
            "Companies": f"{run.companies_scanned:,}",
            "New breaches": str(run.new_breaches),
            "New warnings": str(run.new_warnings),
            "Duration": f"{run.duration_ms} ms",
        },
    )
