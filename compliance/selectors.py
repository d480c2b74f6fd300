"""What goes into an evidence pack, read from every app: one function per file, each
returning plain rows (dicts of strings and numbers) in a stable order.

Point-in-time lists (users, groups, keys) are as they stand when the pack is built; the
period's history (grants, changes, incidents, alerts) comes from the rows and audit
records of the period. Audit records belong to a period by chain position: from the
first record after the chain head at its start through the head at its end, so the
periods' exports join up with no gap and no overlap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Max, Q
from django.utils import timezone

from accounts.models import CompanyAPIKey, Membership
from audit.chain import GENESIS_HASH
from audit.models import AuditLog
from audit.selectors import audit_export_rows, audit_verify_chain
from compliance.periods import Period
from ops.models import Notification, OpsTask
from regions.models import FailoverEvent, GameDay
from regions.selectors import policy_get, service_availability

INACTIVE_AFTER = timedelta(days=90)

Row = dict[str, Any]


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat() if moment else ""


def _seconds(start: datetime | None, end: datetime | None) -> float | str:
    if start is None or end is None:
        return ""
    return round((end - start).total_seconds(), 1)


# --- The audit trail ------------------------------------------------------------------


@dataclass(frozen=True)
class ChainPoint:
    seq: int
    hash: str


def _head_before(moment: datetime) -> ChainPoint:
    """The chain head as it stood at ``moment``: the last record created before it."""
    seq = AuditLog.objects.filter(created_at__lt=moment).aggregate(seq=Max("seq"))["seq"]
    if seq is None:
        return ChainPoint(0, GENESIS_HASH)
    return ChainPoint(seq, AuditLog.objects.values_list("hash", flat=True).get(seq=seq))


@dataclass(frozen=True)
class ChainEnds:
    start: ChainPoint
    end: ChainPoint


def chain_ends(*, period: Period) -> ChainEnds:
    """The heads at the period's two ends. Two writers at the boundary instant may append
    out of time order; going by position, each record still lands in exactly one period."""
    return ChainEnds(_head_before(period.start), _head_before(period.end))


def audit_export(*, ends: ChainEnds) -> Iterator[Row]:
    return audit_export_rows(after_seq=ends.start.seq, through_seq=ends.end.seq)


def audit_verification(*, ends: ChainEnds, period: Period) -> Row:
    result = audit_verify_chain()
    broken = result.broken
    return {
        "period": period.label,
        "verified_at": _iso(timezone.now()),
        "whole_chain_ok": result.ok,
        "records_verified": result.checked,
        "first_break": None if broken is None else {"seq": broken.seq, "reason": broken.reason},
        "head_at_start": {"seq": ends.start.seq, "hash": ends.start.hash, "moment": _iso(period.start)},
        "head_at_end": {"seq": ends.end.seq, "hash": ends.end.hash, "moment": _iso(period.end)},
        "records_in_period": ends.end.seq - ends.start.seq,
    }


def _period_records(ends: ChainEnds) -> Any:
    return AuditLog.objects.filter(seq__gt=ends.start.seq, seq__lte=ends.end.seq).order_by("seq")


# --- Access review --------------------------------------------------------------------


def _perm_names(perms: Any) -> str:
    return "; ".join(sorted(f"{p.content_type.app_label}.{p.codename}" for p in perms))


def _last_seen(user: Any) -> datetime:
    return user.last_login or user.date_joined


def users(*, now: datetime) -> list[Row]:
    rows = []
    qs = get_user_model().objects.order_by("username").prefetch_related(
        "groups", "user_permissions__content_type", "memberships__company"
    )
    for user in qs:
        rows.append({
            "id": user.pk,
            "username": user.username,
            "email": user.email,
            "active": user.is_active,
            "staff": user.is_staff,
            "superuser": user.is_superuser,
            "groups": "; ".join(sorted(g.name for g in user.groups.all())),
            "direct_permissions": _perm_names(user.user_permissions.all()),
            "companies": "; ".join(sorted(f"{m.company.slug} ({m.role})" for m in user.memberships.all())),
            "date_joined": _iso(user.date_joined),
            "last_login": _iso(user.last_login),
            "inactive_90_days": user.is_active and _last_seen(user) < now - INACTIVE_AFTER,
        })
    return rows


def groups() -> list[Row]:
    return [
        {
            "group": group.name,
            "permissions": _perm_names(group.permissions.all()),
            "members": "; ".join(sorted(u.username for u in group.user_set.all())),
        }
        for group in Group.objects.order_by("name").prefetch_related("permissions__content_type", "user_set")
    ]


def memberships() -> list[Row]:
    return [
        {
            "company": m.company.slug,
            "username": m.user.username,
            "role": m.role,
            "since": _iso(m.created_at),
            "user_active": m.user.is_active,
        }
        for m in Membership.objects.select_related("company", "user").order_by("company__slug", "user__username")
    ]


def api_keys(*, now: datetime) -> list[Row]:
    rows = []
    for key in CompanyAPIKey.objects.select_related("company").order_by("company__slug", "created", "prefix"):
        expired = key.expiry_date is not None and key.expiry_date <= now
        rows.append({
            "company": key.company.slug,
            "name": key.name,
            "prefix": key.prefix,  # identifies the key; the secret is never stored, let alone exported
            "created": _iso(key.created),
            "last_used_at": _iso(key.last_used_at),
            "status": "revoked" if key.revoked else "expired" if expired else "active",
            "expires": _iso(key.expiry_date),
            "unused_90_days": not key.revoked and (key.last_used_at or key.created) < now - INACTIVE_AFTER,
        })
    return rows


def inactive_accounts(*, now: datetime) -> list[Row]:
    """Active accounts nobody has signed in with for 90 days (never: counted from joining)."""
    cutoff = now - INACTIVE_AFTER
    qs = get_user_model().objects.filter(is_active=True).filter(
        Q(last_login__lt=cutoff) | Q(last_login__isnull=True, date_joined__lt=cutoff)
    )
    return [
        {
            "username": user.username,
            "staff": user.is_staff,
            "superuser": user.is_superuser,
            "last_login": _iso(user.last_login),
            "date_joined": _iso(user.date_joined),
            "days_since_seen": (now - _last_seen(user)).days,
        }
        for user in qs.order_by("username")
    ]


# Who may do what: changes to these are grants or removals.
ACCESS_FIELDS = {
    "auth.user": {"is_active", "is_staff", "is_superuser", "groups", "user_permissions"},
    "auth.group": {"permissions"},
    "accounts.membership": {"role", "user", "company"},
    "accounts.companyapikey": {"revoked", "expiry_date"},
    # Records written before these models moved to accounts name them by their old app.
    "billing.membership": {"role", "user", "company"},
    "billing.companyapikey": {"revoked", "expiry_date"},
}
ACCESS_SERVICE_ACTIONS = {"billing.api_key.create": "grant", "billing.api_key.revoke": "removal"}
TOKEN_TARGETS = {"authtoken.token", "authtoken.tokenproxy"}


def _record_base(log: AuditLog) -> Row:
    return {
        "seq": log.seq,
        "at": _iso(log.created_at),
        "actor": log.actor_label,
        "action": log.action,
        "target_type": log.target_type,
        "target": log.target_repr,
        "company": log.company_name,
    }


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return str(value)


def _changes(log: AuditLog) -> dict[str, dict[str, Any]]:
    if "changes" in log.details:
        return log.details["changes"] or {}
    if "before" in log.details and isinstance(log.details["before"], dict):
        return {k: {"before": v, "after": None} for k, v in log.details["before"].items()}
    return {}


def _access_rows(log: AuditLog, fields: set[str]) -> list[Row]:
    base = _record_base(log)
    verb = log.action.rsplit(".", 1)[-1]
    if verb == "delete":
        return [{**base, "change": "removal", "field": "", "before": "", "after": ""}]
    rows = []
    for name, change in sorted(_changes(log).items()):
        if name not in fields:
            continue
        before, after = change.get("before"), change.get("after")
        if isinstance(before, list) or isinstance(after, list):
            added = sorted(set(after or []) - set(before or []))
            removed = sorted(set(before or []) - set(after or []))
            rows += [{**base, "change": "grant", "field": name, "before": "", "after": item} for item in added]
            rows += [{**base, "change": "removal", "field": name, "before": item, "after": ""} for item in removed]
            continue
        if verb == "add":
            if not after or name == "revoked":
                continue  # a flag left off on a new record grants nothing
            kind = "grant"
        elif isinstance(before, bool) and isinstance(after, bool):
            # revoked: True is a removal; every other flag grants when it turns on.
            granted = after if name != "revoked" else not after
            kind = "grant" if granted else "removal"
        else:
            kind = "change"
        rows.append({**base, "change": kind, "field": name, "before": _as_text(before), "after": _as_text(after)})
    if verb == "add" and not rows:
        rows.append({**base, "change": "grant", "field": "", "before": "", "after": ""})
    return rows


def access_changes(*, ends: ChainEnds) -> list[Row]:
    """Every grant or removal of access in the period, one row per field that moved."""
    admin_actions = Q()
    for target in [*ACCESS_FIELDS, *TOKEN_TARGETS]:
        admin_actions |= Q(action__startswith=f"admin.{target}.")
    rows = []
    for log in _period_records(ends).filter(admin_actions | Q(action__in=list(ACCESS_SERVICE_ACTIONS))):
        if log.action in ACCESS_SERVICE_ACTIONS:
            kind = ACCESS_SERVICE_ACTIONS[log.action]
            rows.append({**_record_base(log), "change": kind, "field": "", "before": "", "after": ""})
            continue
        target = log.action.removeprefix("admin.").rsplit(".", 1)[0]
        rows += _access_rows(log, ACCESS_FIELDS.get(target, set()))
    return rows


# --- Change management ----------------------------------------------------------------


def admin_log(*, period: Period) -> list[Row]:
    """Django admin's own history (``LogEntry``) for the period."""
    entries = (
        LogEntry.objects.filter(action_time__gte=period.start, action_time__lt=period.end)
        .select_related("user", "content_type")
        .order_by("action_time", "pk")
    )
    return [
        {
            "at": _iso(entry.action_time),
            "user": entry.user.get_username(),
            "action": {1: "add", 2: "change", 3: "delete"}.get(entry.action_flag, str(entry.action_flag)),
            "model": f"{entry.content_type.app_label}.{entry.content_type.model}" if entry.content_type else "",
            "object_id": entry.object_id or "",
            "object": entry.object_repr,
            "message": entry.get_change_message(),
        }
        for entry in entries
    ]


def admin_changes(*, ends: ChainEnds) -> list[Row]:
    """Every change made in admin, from the audit trail, with before and after values."""
    return [
        {**_record_base(log), "target_id": log.target_id, "changes": _changes(log)}
        for log in _period_records(ends).filter(action__startswith="admin.")
    ]


CONFIG_AREAS = {
    "regions.failoverpolicy": "policy",
    "regions.region": "policy",
    "billing.tier": "tiers",
    "billing.tierlimit": "tiers",
    "billing.feature": "tiers",
    "billing.entitlementoverride": "tiers",
    "billing.tierprice": "tiers",
    "billing.tierfeatureprice": "tiers",
    "billing.featuremeter": "tiers",
    "django_celery_beat.periodictask": "schedules",
    "django_celery_beat.crontabschedule": "schedules",
    "django_celery_beat.intervalschedule": "schedules",
    "django_celery_beat.clockedschedule": "schedules",
    "django_celery_beat.solarschedule": "schedules",
    "waffle.switch": "switches",
    "waffle.flag": "switches",
    "waffle.sample": "switches",
}


def configuration_changes(*, ends: ChainEnds) -> list[Row]:
    """Policy, tiers, schedules and switches: one row per field changed, with the actor."""
    rows = []
    for log in _period_records(ends).filter(target_type__in=list(CONFIG_AREAS)):
        base = {**_record_base(log), "area": CONFIG_AREAS[log.target_type]}
        changes = _changes(log)
        if not changes:
            rows.append({**base, "field": "", "before": "", "after": _as_text(log.details or "")})
        for name, change in sorted(changes.items()):
            rows.append({
                **base, "field": name, "before": _as_text(change.get("before")), "after": _as_text(change.get("after")),
            })
    return rows


# --- Monitoring and incident response -------------------------------------------------


def failovers(*, period: Period) -> list[Row]:
    events = (
        FailoverEvent.objects.filter(decided_at__gte=period.start, decided_at__lt=period.end)
        .select_related("from_region", "to_region")
        .order_by("decided_at", "pk")
    )
    return [
        {
            "decided_at": _iso(e.decided_at),
            "kind": e.kind,
            "from_region": e.from_region.slug if e.from_region else "",
            "to_region": e.to_region.slug if e.to_region else "",
            "actor": e.actor,
            "reason": e.reason,
            "forced": e.forced,
            "pinned": e.pinned,
            "failing_since": _iso(e.failing_since),
            "seconds_from_first_failure": _seconds(e.failing_since, e.decided_at),
        }
        for e in events
    ]


def rto_target_seconds() -> int:
    return int(settings.REGIONS_RTO_TARGET_SECONDS)


def game_days(*, period: Period) -> list[Row]:
    target = rto_target_seconds()
    games = (
        GameDay.objects.filter(started_at__gte=period.start, started_at__lt=period.end)
        .select_related("region", "switched_to")
        .order_by("started_at", "pk")
    )
    return [
        {
            "started_at": _iso(g.started_at),
            "region": g.region.slug if g.region else "",
            "method": g.method,
            "detected_after_s": "" if g.detected_after_s is None else round(g.detected_after_s, 1),
            "rto_s": "" if g.switched_after_s is None else round(g.switched_after_s, 1),
            "rto_target_s": target,
            "within_target": g.succeeded and g.switched_after_s is not None and g.switched_after_s <= target,
            "switched_to": g.switched_to.slug if g.switched_to else "",
            "succeeded": g.succeeded,
            "notes": g.notes,
        }
        for g in games
    ]


def alerts(*, period: Period) -> list[Row]:
    notes = Notification.objects.filter(created_at__gte=period.start, created_at__lt=period.end).order_by(
        "created_at", "pk"
    )
    return [
        {
            "created_at": _iso(n.created_at),
            "kind": n.kind,
            "severity": n.severity,
            "title": n.title,
            "status": n.status,
            "slack": n.slack_status,
            "email": n.email_status,
            "attempts": n.attempts,
            "sent_at": _iso(n.sent_at),
            "delivery_seconds": _seconds(n.created_at, n.sent_at),
            "last_error": n.last_error,
        }
        for n in notes
    ]


def ops_tasks(*, period: Period) -> list[Row]:
    tasks = (
        OpsTask.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
        .select_related("assignee")
        .order_by("created_at", "pk")
    )
    return [
        {
            "created_at": _iso(t.created_at),
            "kind": t.kind,
            "title": t.title,
            "severity": t.severity,
            "status": t.status,
            "assignee": t.assignee.get_username() if t.assignee else "",
            "acknowledged_at": _iso(t.acknowledged_at),
            "closed_at": _iso(t.closed_at),
            "seconds_to_acknowledge": _seconds(t.created_at, t.acknowledged_at),
            "seconds_to_close": _seconds(t.created_at, t.closed_at),
            "resolution_note": t.resolution_note,
        }
        for t in tasks
    ]


# --- Availability ---------------------------------------------------------------------


def availability_by_month(*, period: Period, now: datetime) -> list[Row]:
    """Each month of the period measured as the dashboard measures availability (the
    serving region's probes, each speaking for the time until the next), against the SLO."""
    target = float(policy_get().slo_target)
    rows = []
    for month, start, end in period.months():
        until = min(end, now)
        a = service_availability(now=until, since=start, slo_target=target) if start < until else None
        measured = a is not None and a.availability is not None
        rows.append({
            "month": month,
            "from": _iso(start),
            "until": _iso(until if start < until else start),
            "slo_target_percent": target,
            "availability_percent": a.availability if measured and a else "",
            "covered_minutes": a.window_minutes if a else 0.0,
            "downtime_minutes": a.downtime_minutes if a else 0.0,
            "error_budget_minutes": a.error_budget_minutes if a else 0.0,
            "meets_slo": ("yes" if a.meets_slo else "no") if measured and a else "no data",
        })
    return rows
