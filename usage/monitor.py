"""The nightly monitor: the safety net behind ingestion's crossings, once a night at 02:00 UTC.

Ingestion records and announces each alert level the moment a request passes it
(``usage.crossings``). The monitor reads every counter against the levels that apply to
its company (the tier's and the owners' own) and records, announces and counts the
crossings ingestion had not: a counter changed outside ingestion, a level added after it
was passed, a bug. Its report says how many (should be 0). Each crossing (company,
feature, period, level) is recorded once (a unique constraint and INSERT ... ON CONFLICT),
so a rerun, a second worker or a dry run never alerts twice; a run that dies is found by
the next one and closed as abandoned. Work goes in batches (one insert of crossings, one
of tasks, one of alerts per batch), so a first night with thousands of crossings is quick.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Company, CompanyStatus
from audit.services import Actor
from billing.plans.models import Feature, Tier
from core.links import admin_url
from ops.services import notify, ops_task_open
from usage.crossings import (
    Reached,
    alert_levels,
    crossings_record,
    levels_reached,
    reached_rows,
)
from usage.models import (
    BREACH_PERCENT,
    CrossingSource,
    MonitorRun,
    MonitorRunStatus,
    ThresholdCrossing,
)
from usage.selectors import usage_levels

log = logging.getLogger(__name__)

MONITOR_ACTOR = Actor.system("usage-monitor")
# A run still "running" after this long died (killed worker, lost machine).
STALE_RUN_AFTER = timedelta(hours=1)
WORST_OFFENDERS = 10


@dataclass
class Candidate:
    company_id: int
    feature_id: int
    period_start: datetime
    period_end: datetime
    used: int
    included: int
    levels: tuple[int, ...]
    recorded: set[int] = field(default_factory=set)

    @property
    def percent(self) -> float:
        return round(self.used * 100 / self.included, 1) if self.included else float("inf")

    @property
    def reached(self) -> list[int]:
        return levels_reached(used=self.used, included=self.included, levels=self.levels)

    @property
    def level(self) -> str:
        """As the dashboard says it: over the limit, or at a warning level."""
        return "exceeded" if self.used > self.included else "warning"

    def new_levels(self) -> list[int]:
        return [lv for lv in self.reached if lv not in self.recorded]

    def new_rows(self) -> list[Reached]:
        return reached_rows(
            company_id=self.company_id,
            feature_id=self.feature_id,
            period_start=self.period_start,
            used=self.used,
            included=self.included,
            levels=self.new_levels(),
        )


def _lowest_level() -> int | None:
    """The lowest alert level any tier or company uses: the floor of the counters read."""
    found: set[int] = set()
    for levels in Tier.objects.values_list("alert_levels", flat=True):
        found.update(alert_levels(tier_levels=levels, company_levels=None))
    for levels in Company.objects.exclude(alert_levels=[]).values_list("alert_levels", flat=True):
        found.update(alert_levels(tier_levels=None, company_levels=levels))
    return min(found, default=None)


def monitor_candidates(*, now: datetime) -> list[Candidate]:
    """Every company/feature/period that has reached at least one of its alert levels,
    with the levels recorded already. One aggregate query over counters joined with
    limits (``usage_levels``, the rule the dashboard reads, with the lowest level in use as
    its floor) and one over this window's crossings: the cost follows the number of
    counters, never the number of events. Periods that closed within the last day plus
    the grace window are included, so a crossing in a period's last hours is not missed."""
    floor = _lowest_level()
    if floor is None:
        return []
    since = now - timedelta(days=1, hours=settings.USAGE_GRACE_HOURS)
    rows = (
        usage_levels(now=now, since=since, min_percent=floor)
        .order_by("company_id", "feature_id", "period_start")
        .values_list(
            "company_id", "feature_id", "period_start", "period_end", "used", "included",
            "company__tier__alert_levels", "company__alert_levels",
        )
    )
    candidates: list[Candidate] = []
    for company_id, feature_id, start, end, used, included, tier_levels, own_levels in rows:
        levels = alert_levels(tier_levels=tier_levels, company_levels=own_levels)
        candidate = Candidate(company_id, feature_id, start, end, used, included, levels)
        if candidate.reached:
            candidates.append(candidate)
    if candidates:
        by_slot = {(c.company_id, c.feature_id, c.period_start): c for c in candidates}
        recorded = ThresholdCrossing.objects.filter(
            period_start__in={c.period_start for c in candidates}, company_id__in={c.company_id for c in candidates}
        ).values_list("company_id", "feature_id", "period_start", "level")
        for company_id, feature_id, start, level in recorded:
            slot = by_slot.get((company_id, feature_id, start))
            if slot is not None:
                slot.recorded.add(level)
    return candidates


def _record_crossings(*, run: MonitorRun, batch: list[Candidate], now: datetime) -> tuple[int, int]:
    """Record one batch of missed crossings and announce the ones this run inserted (a
    concurrent request or run that got there first has announced them), in one
    transaction. Returns (crossings recorded, tasks opened)."""
    companies = Company.objects.select_related("tier").in_bulk({c.company_id for c in batch})
    features = Feature.objects.in_bulk({c.feature_id for c in batch})
    rows = [row for c in batch for row in c.new_rows()]
    with transaction.atomic():
        return crossings_record(
            rows=rows,
            source=CrossingSource.MONITOR,
            actor=MONITOR_ACTOR,
            now=now,
            run_id=run.pk,
            companies=companies,
            features=features,
        )


def _report(*, candidates: list[Candidate], new: list[Candidate], now: datetime, missed: int) -> dict:
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
        "new_crossings": [row(c, levels=[f"{lv} %" for lv in c.new_levels()]) for c in new[:500]],
        "new_crossings_total": len(new),
        "missed_by_ingest": missed,
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
        new = [c for c in candidates if c.new_levels()]
        current = [c for c in candidates if c.period_end > now]
        run.companies_scanned = Company.objects.exclude(status=CompanyStatus.CANCELED).count()
        run.breaches = sum(1 for c in current if c.used > c.included)
        run.warnings = len(current) - run.breaches
        run.new_breaches = sum(1 for c in new if max(c.new_levels()) >= BREACH_PERCENT)
        run.new_warnings = len(new) - run.new_breaches
        missed = sum(len(c.new_levels()) for c in new)
        if not dry_run:
            size = max(1, settings.USAGE_MONITOR_BATCH)
            missed = 0
            for i in range(0, len(new), size):
                recorded, tasks = _record_crossings(run=run, batch=new[i : i + size], now=now)
                missed += recorded
                run.new_tasks += tasks
        run.missed_by_ingest = missed
        if missed and not dry_run:
            log.warning("usage monitor run %s found %s crossing(s) ingestion had not recorded", run.pk, missed)
        run.report = _report(candidates=candidates, new=new, now=now, missed=missed)
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
                f"{run.breaches} over their limit and {run.warnings} at an alert level now; "
                f"{run.new_tasks} new ops tasks; {run.missed_by_ingest} crossing(s) ingestion had missed.",
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
            "Missed by ingestion": str(run.missed_by_ingest),
            "Duration": f"{run.duration_ms} ms",
        },
    )
