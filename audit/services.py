"""Writing to the audit trail. Call ``audit_record`` inside the transaction of the action
it records, so both commit or roll back together."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from audit.chain import GENESIS_HASH, canonical_content, chain_hash
from audit.models import ActorType, AuditLog, ChainHead
from core import context
from core.postgresql.prepared import fetchall_prepared


@dataclass(frozen=True)
class Actor:
    """Who did it: a user, one of our own system tasks, or an outside caller (Stripe)."""

    type: str
    label: str
    user_id: int | None = None

    @classmethod
    def of_user(cls, user: Any) -> Actor:
        if user is None or not getattr(user, "is_authenticated", False):
            return cls(type=ActorType.EXTERNAL, label="anonymous")
        return cls(type=ActorType.USER, label=user.get_username(), user_id=user.pk)

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(type=ActorType.SYSTEM, label=name)

    @classmethod
    def external(cls, name: str) -> Actor:
        return cls(type=ActorType.EXTERNAL, label=name)


@dataclass(frozen=True)
class Target:
    """A target that is not a model instance (a setting, a schedule, a login name)."""

    type: str
    id: str = ""
    repr: str = ""


def json_safe(value: Any) -> Any:
    """What the JSON column will hand back, so the stored record hashes as it was hashed."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


_COLUMNS = [
    "created_at", "actor_type", "actor_user_id", "actor_label", "action", "target_type",
    "target_id", "target_repr", "company_id", "company_name", "details", "request_id", "ip",
]

# One round trip: ``audit_append`` (audit migration 0004) advances the head (which locks
# its row), hashes and inserts. It runs as the tables' owner, so the application's role
# needs no right to move the head itself. A concurrent appender waits on the head's row
# lock until this transaction ends, then continues from the new head.
_APPEND_SQL = (
    "SELECT r_id, r_seq, r_prev_hash, r_hash FROM audit_append(%s, %s::timestamptz, %s, %s::bigint, %s, %s, "
    "%s, %s, %s, %s::bigint, %s, %s::jsonb, %s, %s::inet)"
)


def _ensure_head() -> None:
    ChainHead.objects.bulk_create([ChainHead(pk=1, seq=0, hash=GENESIS_HASH)], ignore_conflicts=True)


def _append_postgresql(log: AuditLog, content: str, details_json: str) -> None:
    params = [
        content, log.created_at, log.actor_type, log.actor_user_id, log.actor_label, log.action,
        log.target_type, log.target_id, log.target_repr, log.company_id, log.company_name, details_json,
        log.request_id, log.ip,
    ]
    # Prepared, on Django's own connection (so inside the caller's transaction), through its
    # execute wrappers and error translation (core.postgresql.prepared).
    rows = fetchall_prepared(_APPEND_SQL, params)
    if not rows:
        raise RuntimeError("audit chain head could not be created")
    log.pk, log.seq, log.prev_hash, log.hash = rows[0]
    log._state.adding = False


def _append_portable(log: AuditLog, content: str) -> None:
    with transaction.atomic():
        head = ChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None:
            _ensure_head()
            head = ChainHead.objects.select_for_update().get(pk=1)
        log.seq, log.prev_hash = head.seq + 1, head.hash
        log.hash = chain_hash(prev_hash=head.hash, seq=log.seq, content=content)
        log.save(force_insert=True)
        ChainHead.objects.filter(pk=1).update(seq=log.seq, hash=log.hash, prev_hash=head.hash)


# Values never written to the trail, even when a change to them is.
SECRET_FIELDS = {"password", "key", "hashed_key", "secret", "token"}


def _target_fields(target: models.Model | Target | None) -> dict[str, str]:
    if target is None:
        return {"target_type": "", "target_id": "", "target_repr": ""}
    if isinstance(target, Target):
        return {"target_type": target.type, "target_id": target.id, "target_repr": target.repr[:200]}
    if target._meta.pk.name in SECRET_FIELDS:  # e.g. a DRF token, whose id is the secret
        return {
            "target_type": target._meta.label_lower,
            "target_id": "",
            "target_repr": f"{target._meta.verbose_name} (id withheld: it is the secret)",
        }
    return {
        "target_type": target._meta.label_lower,
        "target_id": str(target.pk),
        "target_repr": str(target)[:200],
    }


@dataclass(frozen=True)
class AuditEntry:
    """What ``audit_record`` takes, for ``audit_record_many``."""

    action: str
    actor: Actor
    target: models.Model | Target | None = None
    company: models.Model | None = None
    details: dict[str, Any] | None = None


# Many appends in one round trip: ``audit_append`` once per record, in order, each one
# continuing from the head the one before it left (a statement sees its own earlier
# changes). The records travel as one JSON array: one parameter, quoted once.
_APPEND_MANY_SQL = (
    "SELECT r.r_id FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS u(doc, n) "
    "CROSS JOIN LATERAL audit_append(u.doc->>'content', (u.doc->>'created_at')::timestamptz, "
    "u.doc->>'actor_type', (u.doc->>'actor_user_id')::bigint, u.doc->>'actor_label', u.doc->>'action', "
    "u.doc->>'target_type', u.doc->>'target_id', u.doc->>'target_repr', (u.doc->>'company_id')::bigint, "
    "u.doc->>'company_name', u.doc->'details', u.doc->>'request_id', (u.doc->>'ip')::inet) AS r ORDER BY u.n"
)
_MANY_CHUNK = 1000


def audit_record_many(entries: list[AuditEntry]) -> int:
    """``audit_record`` for a batch (a job that audits thousands of things at once): the
    same records, chained in order, in the caller's transaction, with one round trip per
    thousand on PostgreSQL. Returns how many were appended."""
    if not entries:
        return 0
    ctx = context.current()
    ip = context.normalize_ip(ctx.ip)
    logs: list[tuple[AuditLog, str]] = []
    for entry in entries:
        log = AuditLog(
            created_at=timezone.now(),
            actor_type=entry.actor.type,
            actor_user_id=entry.actor.user_id,
            actor_label=entry.actor.label[:150],
            action=entry.action,
            company_id=entry.company.pk if entry.company is not None else None,
            company_name=str(entry.company)[:200] if entry.company is not None else "",
            details=json_safe(entry.details or {}),
            request_id=ctx.request_id,
            ip=ip,
            **_target_fields(entry.target),
        )
        logs.append((log, canonical_content(log)))
    if connection.vendor != "postgresql":
        for log, content in logs:
            _append_portable(log, content)
        return len(logs)
    with transaction.atomic(), connection.cursor() as cursor:
        for lo in range(0, len(logs), _MANY_CHUNK):
            chunk = logs[lo : lo + _MANY_CHUNK]
            docs = [
                # created_at in full (DjangoJSONEncoder would cut it to milliseconds, unlike the hashed content)
                {**{c: getattr(log, c) for c in _COLUMNS}, "created_at": log.created_at.isoformat(), "content": content}
                for log, content in chunk
            ]
            cursor.execute(_APPEND_MANY_SQL, [json.dumps(docs, cls=DjangoJSONEncoder)])
            if len(cursor.fetchall()) != len(chunk):
                raise RuntimeError("audit chain head could not be created")
    return len(logs)


def audit_record(
    *,
    action: str,
    actor: Actor,
    target: models.Model | Target | None = None,
    company: models.Model | None = None,
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Append one record to the chain. Joins the caller's transaction when there is one:
    the chain head stays locked until that transaction ends, which is what keeps the
    chain unbroken under concurrent writers (keep audited transactions short)."""
    ctx = context.current()
    details_json = json.dumps(details or {}, cls=DjangoJSONEncoder)
    log = AuditLog(
        created_at=timezone.now(),
        actor_type=actor.type,
        actor_user_id=actor.user_id,
        actor_label=actor.label[:150],
        action=action,
        company_id=company.pk if company is not None else None,
        company_name=str(company)[:200] if company is not None else "",
        details=json.loads(details_json),  # what the JSON column will hand back (json_safe)
        request_id=ctx.request_id,
        ip=context.normalize_ip(ctx.ip),
        **_target_fields(target),
    )
    content = canonical_content(log)
    if connection.vendor == "postgresql":
        _append_postgresql(log, content, details_json)
    else:
        _append_portable(log, content)
    return log
