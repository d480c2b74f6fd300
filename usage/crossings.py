"""Threshold crossings: which alert levels a counter passed, recording each once, and the
announcement (owners' e-mail; for a breach also the ops alert and task; an audit record).

One implementation for both callers: ingestion records the crossings its own counter
update made, in the same transaction, and the nightly monitor records, in batches, the
ones ingestion missed. A level is a percent of the included quantity; it is reached when
``used * 100 >= included * level``; 100 and above are breaches. The unique constraint on
(company, feature, period, level) and ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` make
whoever inserts a crossing the only one to announce it, however many requests or runs
reach it together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.db import connection
from django.urls import reverse

from accounts.models import Company, Membership, MembershipRole
from audit.services import Actor, AuditEntry, Target, audit_record_many
from billing.plans.models import MAX_ALERT_LEVEL, Feature
from core.links import absolute_url
from ops.services import AlertSpec, TaskSpec, notify_many, ops_tasks_open_many
from usage.extensions import warning_email_extras
from usage.models import BREACH_PERCENT, CrossingSource, ThresholdCrossing


def alert_levels(*, tier_levels: Iterable[Any] | None, company_levels: Iterable[Any] | None) -> tuple[int, ...]:
    """The levels that apply to a company: its tier's and its owners' own, sorted. Values
    that are not whole percents in range (a hand-edited row) are ignored, not fatal."""
    out = {
        v
        for v in (*(tier_levels or ()), *(company_levels or ()))
        if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_ALERT_LEVEL
    }
    return tuple(sorted(out))


def company_alert_levels(company: Company) -> tuple[int, ...]:
    return alert_levels(tier_levels=company.tier.alert_levels, company_levels=company.alert_levels)


def levels_between(*, before: int, after: int, included: int | None, levels: Iterable[int]) -> list[int]:
    """The levels a counter passed going from ``before`` to ``after`` units (an unlimited
    or zero quantity has no levels)."""
    if not included or included <= 0 or after <= before:
        return []
    return [lv for lv in levels if before * 100 < included * lv <= after * 100]


def levels_reached(*, used: int, included: int | None, levels: Iterable[int]) -> list[int]:
    return levels_between(before=0, after=used, included=included, levels=levels)


@dataclass(frozen=True)
class Reached:
    """A level a counter reached. Of several levels reached at once only the highest is
    announced (``notified``); the others are recorded so that nobody announces them later."""

    company_id: int
    feature_id: int
    period_start: datetime
    level: int
    used: int
    included: int
    notified: bool = True
    mode: str = "soft"

    @property
    def key(self) -> tuple[int, int, datetime, int]:
        return (self.company_id, self.feature_id, self.period_start, self.level)

    @property
    def breach(self) -> bool:
        return self.level >= BREACH_PERCENT

    @property
    def percent(self) -> float:
        return round(self.used * 100 / self.included, 1) if self.included else float("inf")


def reached_rows(
    *, company_id: int, feature_id: int, period_start: datetime, used: int, included: int, levels: list[int],
    mode: str = "soft",
) -> list[Reached]:
    top = max(levels, default=0)
    return [
        Reached(company_id, feature_id, period_start, lv, used, included, notified=lv == top, mode=mode)
        for lv in levels
    ]


_COLUMNS = "company_id, feature_id, period_start, level, used, included, notified, source, run_id, created_at"

_PG_INSERT_SQL = f"""
INSERT INTO {{table}} ({_COLUMNS})
SELECT c, f, p, l, u, i, n, %(source)s, %(run_id)s, %(now)s
FROM unnest(%(companies)s::bigint[], %(features)s::bigint[], %(starts)s::timestamptz[], %(levels)s::smallint[],
            %(used)s::bigint[], %(included)s::bigint[], %(notified)s::boolean[]) AS r(c, f, p, l, u, i, n)
ORDER BY c, f, p, l
ON CONFLICT (company_id, feature_id, period_start, level) DO NOTHING
RETURNING id, company_id, feature_id, period_start, level
"""  # noqa: S608 (the table name is the model's)

_ONE_INSERT_SQL = f"""
INSERT INTO {{table}} ({_COLUMNS})
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (company_id, feature_id, period_start, level) DO NOTHING
RETURNING id
"""  # noqa: S608


def _table() -> str:
    return connection.ops.quote_name(ThresholdCrossing._meta.db_table)


def crossings_insert(
    *, rows: list[Reached], source: str, now: datetime, run_id: int | None = None
) -> list[tuple[Reached, int]]:
    """Insert the crossings not recorded yet (one statement on PostgreSQL) and return the
    ones this call inserted, with their ids: only those are to be announced. Call inside
    the transaction that acts on them."""
    if not rows:
        return []
    by_key = {r.key: r for r in rows}
    out: list[tuple[Reached, int]] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                _PG_INSERT_SQL.format(table=_table()),
                {
                    "source": source,
                    "run_id": run_id,
                    "now": now,
                    "companies": [r.company_id for r in rows],
                    "features": [r.feature_id for r in rows],
                    "starts": [r.period_start for r in rows],
                    "levels": [r.level for r in rows],
                    "used": [r.used for r in rows],
                    "included": [r.included for r in rows],
                    "notified": [r.notified for r in rows],
                },
            )
            for pk, company_id, feature_id, start, level in cursor.fetchall():
                out.append((by_key[(company_id, feature_id, start, level)], pk))
            return out
        sql = _ONE_INSERT_SQL.format(table=_table())
        for r in rows:
            cursor.execute(
                sql,
                [
                    r.company_id, r.feature_id, connection.ops.adapt_datetimefield_value(r.period_start), r.level,
                    r.used, r.included, r.notified, source, run_id, connection.ops.adapt_datetimefield_value(now),
                ],
            )
            row = cursor.fetchone()
            if row is not None:
                out.append((r, row[0]))
    return out


def owner_emails_by_company(company_ids: Iterable[int]) -> dict[int, list[str]]:
    """Active owners' addresses per company, in one query (``company_owner_emails`` for many)."""
    out: dict[int, list[str]] = {}
    rows = (
        Membership.objects.filter(company_id__in=set(company_ids), role=MembershipRole.OWNER, user__is_active=True)
        .exclude(user__email="")
        .order_by("company_id", "user__email")
        .values_list("company_id", "user__email")
    )
    for company_id, email in rows:
        emails = out.setdefault(company_id, [])
        if email not in emails:
            emails.append(email)
    return out


def account_usage_url(company: Company) -> str:
    """The company's usage page in the account pages (the link in the owners' e-mails)."""
    return absolute_url(reverse("customers:usage") + "?" + urlencode({"company": company.slug}))


_BEYOND = {
    "hard": "Nothing beyond the limit is accepted until the period ends.",
    "capped": "Usage beyond the limit is billed per unit up to your plan's cap, then refused.",
}


def crossings_act(
    *,
    recorded: list[tuple[Reached, int]],
    actor: Actor,
    companies: dict[int, Company] | None = None,
    features: dict[int, Feature] | None = None,
) -> int:
    """Announce the crossings this caller recorded, in its transaction: per announced
    crossing an audit record and the owners' e-mail; per breach also an ops task and an
    ops alert (the outbox: dedup keys, delivery after commit, storm folding). Lower
    levels reached at the same moment are named in the record, not announced. Returns
    the ops tasks opened."""
    notified = [(r, pk) for r, pk in recorded if r.notified]
    if not notified:
        return 0
    if companies is None:
        companies = Company.objects.select_related("tier").in_bulk({r.company_id for r, _ in notified})
    if features is None:
        features = Feature.objects.in_bulk({r.feature_id for r, _ in notified})
    silent: dict[tuple[int, int, datetime], list[int]] = {}
    for r, _ in recorded:
        if not r.notified:
            silent.setdefault(r.key[:3], []).append(r.level)
    owners = owner_emails_by_company({r.company_id for r, _ in notified})
    alerts: list[AlertSpec] = []
    tasks: list[TaskSpec] = []
    audits: list[AuditEntry] = []
    for r, pk in notified:
        company, feature = companies[r.company_id], features[r.feature_id]
        period = f"{r.period_start:%Y-%m-%d}"
        name = feature.name.lower()
        limit_text = f"{r.used:,} of {r.included:,} {feature.unit}s ({r.percent:g} %)"
        dedup = f"usage.{r.level}:{company.pk}:{feature.code}:{period}"
        also = sorted(silent.get(r.key[:3], []))
        target = Target(type=ThresholdCrossing._meta.label_lower, id=str(pk), repr=f"{company} {feature} {r.level} %")
        audits.append(
            AuditEntry(
                action=f"usage.threshold.{'exceeded' if r.breach else 'warning'}",
                actor=actor,
                target=target,
                company=company,
                details={
                    "feature": feature.code,
                    "period_start": r.period_start,
                    "level": r.level,
                    "also_reached": also,
                    "used": r.used,
                    "included": r.included,
                    "percent": r.percent,
                },
            )
        )
        if r.breach:
            title = (
                f"{company.name} exceeded its {name} limit"
                if r.used > r.included and r.level == BREACH_PERCENT
                else f"{company.name} is at {r.percent:g} % of its {name} limit (level {r.level} %)"
            )
            details = (
                f"{company.name} ({company.tier.name}) used {limit_text} in the period starting {period}. "
                "Overage is billed per unit; offer an upgrade if it keeps happening."
            )
            tasks.append(
                TaskSpec(
                    kind="usage.breach",
                    title=title,
                    details=details,
                    severity="high",
                    company=company,
                    target_model=ThresholdCrossing,
                    target_id=str(pk),
                    dedup_key=dedup,
                )
            )
            alerts.append(
                AlertSpec(
                    kind="usage.breach",
                    title=title,
                    text=details,
                    severity="warning",
                    company_id=company.pk,
                    dedup_key=f"{dedup}:ops",
                    fields={"Feature": feature.name, "Used": limit_text, "Plan": company.tier.name},
                )
            )
        emails = owners.get(company.pk)
        if emails:
            if r.level >= BREACH_PERCENT and r.used > r.included:
                subject = f"You have exceeded your {name} limit"
            elif r.level == BREACH_PERCENT:
                subject = f"You have used all your included {name}"
            else:
                subject = f"You have used {r.percent:g} % of your {name}"
            beyond = _BEYOND.get(r.mode, "Usage beyond the limit is billed per unit.")
            alerts.append(
                AlertSpec(
                    kind=f"usage.{'breach' if r.breach else 'warning'}",
                    title=subject,
                    text=(
                        f"{company.name} has used {limit_text} this billing period "
                        f"(since {period}, plan {company.tier.name}). {beyond} "
                        f"See your usage and compare plans: {account_usage_url(company)}"
                        + "".join(f"\n\n{p}" for p in warning_email_extras(company=company, percent=r.percent))
                    ),
                    severity="critical" if r.breach else "warning",
                    company_id=company.pk,
                    dedup_key=f"{dedup}:owners",
                    slack=False,
                    email_to=emails,
                    fields={"Feature": feature.name, "Used": limit_text, "Plan": company.tier.name},
                )
            )
    audit_record_many(audits)
    opened = ops_tasks_open_many(tasks)
    notify_many(alerts)
    return opened


def crossings_record(
    *,
    rows: list[Reached],
    source: str = CrossingSource.INGEST,
    actor: Actor,
    now: datetime,
    run_id: int | None = None,
    companies: dict[int, Company] | None = None,
    features: dict[int, Feature] | None = None,
) -> tuple[int, int]:
    """Record and announce, in the caller's transaction. Returns (crossings this call
    recorded, ops tasks it opened)."""
    recorded = crossings_insert(rows=rows, source=source, now=now, run_id=run_id)
    tasks = crossings_act(recorded=recorded, actor=actor, companies=companies, features=features)
    return len(recorded), tasks
