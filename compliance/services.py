"""Building, storing and handing out SOC 2 evidence packs. Every pack that leaves the
back office (written by the command, stored by the monthly job, downloaded in admin)
is audited with the SHA-256 of its zip, so the trail vouches for the copy an auditor holds."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.services import Actor, Target, audit_record
from compliance import selectors
from compliance.models import EvidencePack
from compliance.pack import (
    AUDIT_EXPORT,
    AUDIT_VERIFY,
    CRITERIA,
    FILES,
    csv_bytes,
    json_bytes,
    jsonl_bytes,
    sha256,
    zip_build,
)
from compliance.periods import Period
from core.durations import duration_text
from core.tenant_scope import ops_scope


@dataclass(frozen=True)
class BuiltPack:
    period: Period
    data: bytes
    sha256: str
    filename: str
    generated_at: datetime


def _median(values: list[float]) -> str:
    return duration_text(statistics.median(values)) if values else "–"


def _summary(*, period: Period, now: datetime, by: str, data: dict[str, Any]) -> bytes:
    verify = data["verify"]
    users = data["users"]
    access = data["access_changes"]
    games = data["game_days"]
    alerts = data["alerts"]
    tasks = data["ops_tasks"]
    months = data["availability"]
    delivered = [a["delivery_seconds"] for a in alerts if a["delivery_seconds"] != ""]
    acks = [t["seconds_to_acknowledge"] for t in tasks if t["seconds_to_acknowledge"] != ""]
    closes = [t["seconds_to_close"] for t in tasks if t["seconds_to_close"] != ""]
    target = selectors.rto_target_seconds()
    chain = "verifies" if verify["whole_chain_ok"] else f"is BROKEN at #{verify['first_break']['seq']}"
    lines = [
        f"# SOC 2 evidence, {period.first_day} to {period.last_day}",
        "",
        f"Built {now:%Y-%m-%d %H:%M} UTC by {by}. Point-in-time lists (users, groups, keys) are as of then;",
        "everything else covers the period. `manifest.json` holds each file's SHA-256 and criteria;",
        "`python manage.py soc2_evidence --verify <zip>` checks them and the audit chain again.",
        "",
        "## Audit trail (CC7.2, CC8.1)",
        f"- {verify['records_in_period']} records in the period; the whole chain ({verify['records_verified']} "
        f"records) {chain}.",
        f"- Chain head at the start: #{verify['head_at_start']['seq']} `{verify['head_at_start']['hash']}`",
        f"- Chain head at the end: #{verify['head_at_end']['seq']} `{verify['head_at_end']['hash']}`",
        "",
        "## Access review (CC6.1–CC6.3)",
        f"- {len(users)} users: {sum(1 for u in users if u['active'])} active, "
        f"{sum(1 for u in users if u['staff'] and u['active'])} staff, "
        f"{sum(1 for u in users if u['superuser'] and u['active'])} superusers; "
        f"{len(data['inactive'])} active accounts unused for 90 days.",
        f"- {len(data['memberships'])} company memberships; {len(data['api_keys'])} API keys "
        f"({sum(1 for k in data['api_keys'] if k['status'] == 'active')} active).",
        f"- {sum(1 for r in access if r['change'] == 'grant')} grants and "
        f"{sum(1 for r in access if r['change'] == 'removal')} removals of access in the period.",
        "",
        "## Change management (CC8.1)",
        f"- {len(data['admin_changes'])} audited admin changes ({len(data['admin_log'])} in Django's admin log); "
        f"{len(data['configuration_changes'])} configuration fields changed (policy, tiers, schedules, switches).",
        "",
        "## Monitoring and incident response (CC7.2–CC7.4)",
        f"- {len(data['failovers'])} failovers; {len(games)} game days, "
        f"{sum(1 for g in games if g['within_target'])} within the {duration_text(target)} RTO target.",
        f"- {len(alerts)} alerts: {sum(1 for a in alerts if a['status'] == 'sent')} sent "
        f"(median delivery {_median(delivered)}), {sum(1 for a in alerts if a['status'] == 'failed')} failed.",
        f"- {len(tasks)} ops tasks: median time to acknowledge {_median(acks)}, to close {_median(closes)}; "
        f"{sum(1 for t in tasks if t['status'] in ('open', 'acknowledged'))} still open.",
        "",
        "## Availability (A1.2)",
        "",
        "| month | availability | SLO | met |",
        "|---|---|---|---|",
        *[
            f"| {m['month']} | {m['availability_percent'] if m['availability_percent'] != '' else '–'} % "
            f"| {m['slo_target_percent']} % | {m['meets_slo']} |"
            for m in months
        ],
        "",
        "## Files",
        "",
        *[f"- `{spec.path}` ({', '.join(spec.criteria)}): {spec.description}" for spec in FILES.values()],
        "",
        "Criteria: " + "; ".join(f"{k} {v}" for k, v in CRITERIA.items()) + ".",
        "",
    ]
    return "\n".join(lines).encode()


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Every read sees the same moment, so the chain heads, the export and the lists agree:
    on PostgreSQL one repeatable-read transaction (unless the caller's transaction holds)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    connection.ensure_connection()
    raw = connection.connection
    previous = raw.isolation_level
    raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # psycopg opens the next transaction so
    try:
        with transaction.atomic():
            yield
    finally:
        if not raw.closed:
            raw.isolation_level = previous


def evidence_pack_build(*, period: Period, by: str, now: datetime | None = None) -> BuiltPack:
    """Read everything the period's evidence needs and zip it (writes nothing)."""
    now = now or timezone.now()
    # Evidence must be complete whoever asks: every company's rows (row-level security), said so.
    with ops_scope(f"evidence-pack:{period.label}"), _one_snapshot():
        ends = selectors.chain_ends(period=period)
        data: dict[str, Any] = {
            "verify": selectors.audit_verification(ends=ends, period=period),
            "users": selectors.users(now=now),
            "groups": selectors.groups(),
            "memberships": selectors.memberships(),
            "api_keys": selectors.api_keys(now=now),
            "inactive": selectors.inactive_accounts(now=now),
            "access_changes": selectors.access_changes(ends=ends),
            "admin_log": selectors.admin_log(period=period),
            "admin_changes": selectors.admin_changes(ends=ends),
            "configuration_changes": selectors.configuration_changes(ends=ends),
            "failovers": selectors.failovers(period=period),
            "game_days": selectors.game_days(period=period),
            "alerts": selectors.alerts(period=period),
            "ops_tasks": selectors.ops_tasks(period=period),
            "availability": selectors.availability_by_month(period=period, now=now),
        }
        export = jsonl_bytes(selectors.audit_export(ends=ends))
    files = {
        "summary.md": _summary(period=period, now=now, by=by, data=data),
        AUDIT_EXPORT: export,
        AUDIT_VERIFY: json_bytes(data["verify"]),
        "access/users.csv": csv_bytes("access/users.csv", data["users"]),
        "access/groups.csv": csv_bytes("access/groups.csv", data["groups"]),
        "access/memberships.csv": csv_bytes("access/memberships.csv", data["memberships"]),
        "access/api_keys.csv": csv_bytes("access/api_keys.csv", data["api_keys"]),
        "access/inactive_accounts.csv": csv_bytes("access/inactive_accounts.csv", data["inactive"]),
        "access/access_changes.csv": csv_bytes("access/access_changes.csv", data["access_changes"]),
        "changes/admin_log.csv": csv_bytes("changes/admin_log.csv", data["admin_log"]),
        "changes/admin_changes.json": json_bytes(data["admin_changes"]),
        "changes/configuration_changes.csv": csv_bytes(
            "changes/configuration_changes.csv", data["configuration_changes"]
        ),
        "monitoring/failovers.csv": csv_bytes("monitoring/failovers.csv", data["failovers"]),
        "monitoring/game_days.csv": csv_bytes("monitoring/game_days.csv", data["game_days"]),
        "monitoring/alerts.csv": csv_bytes("monitoring/alerts.csv", data["alerts"]),
        "monitoring/ops_tasks.csv": csv_bytes("monitoring/ops_tasks.csv", data["ops_tasks"]),
        "availability/monthly.csv": csv_bytes("availability/monthly.csv", data["availability"]),
    }
    zipped = zip_build(files=files, period=period.label, generated_at=now, generated_by=by)
    return BuiltPack(
        period=period,
        data=zipped,
        sha256=sha256(zipped),
        filename=f"soc2-evidence-{period.first_day}-{period.last_day}.zip",
        generated_at=now,
    )


def _pack_target(built: BuiltPack) -> Target:
    return Target("compliance.evidencepack", built.period.label, built.filename)


def evidence_pack_export(*, period: Period, actor: Actor) -> BuiltPack:
    """A pack to hand over as a file (``soc2_evidence -o``); audited with its hash."""
    built = evidence_pack_build(period=period, by=actor.label)
    audit_record(
        action="compliance.evidence.export",
        actor=actor,
        target=_pack_target(built),
        details={"period": period.label, "sha256": built.sha256, "size": len(built.data)},
    )
    return built


def evidence_pack_store(*, period: Period, actor: Actor) -> tuple[EvidencePack, bool]:
    """Build and keep the period's pack; one per period, so a rerun hands back the
    stored one (False) and never replaces evidence already given out."""
    existing = EvidencePack.objects.defer("file").filter(first_day=period.first_day, last_day=period.last_day).first()
    if existing is not None:
        return existing, False
    built = evidence_pack_build(period=period, by=actor.label)
    try:
        with transaction.atomic():
            pack = EvidencePack.objects.create(
                first_day=period.first_day,
                last_day=period.last_day,
                file=built.data,
                filename=built.filename,
                sha256=built.sha256,
                size=len(built.data),
                created_at=built.generated_at,
                created_by=actor.label,
            )
            audit_record(
                action="compliance.evidence.store",
                actor=actor,
                target=pack,
                details={"period": period.label, "sha256": built.sha256, "size": len(built.data)},
            )
    except IntegrityError:  # another worker stored it first
        return EvidencePack.objects.defer("file").get(first_day=period.first_day, last_day=period.last_day), False
    return pack, True


def evidence_pack_download(*, pack: EvidencePack, actor: Actor) -> bytes:
    """The stored zip, for someone allowed to take it; who took which pack is audited."""
    with transaction.atomic():
        data = bytes(EvidencePack.objects.values_list("file", flat=True).get(pk=pack.pk))
        audit_record(
            action="compliance.evidence.download",
            actor=actor,
            target=pack,
            details={"period": f"{pack.first_day}..{pack.last_day}", "sha256": sha256(data), "size": len(data)},
        )
    return data
