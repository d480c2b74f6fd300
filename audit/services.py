"""Writing to the audit trail. Call ``audit_record`` inside the transaction of the action
it records, so both commit or roll back together."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from audit.models import ActorType, AuditLog, ChainHead
from trans_bot import context

GENESIS_HASH = "0" * 64


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


def canonical_content(log: AuditLog) -> str:
    return json.dumps(
        {
            "seq": log.seq,
            "created_at": log.created_at.astimezone(UTC).isoformat(),
            "actor_type": log.actor_type,
            "actor_user_id": log.actor_user_id,
            "actor_label": log.actor_label,
            "action": log.action,
            "target_type": log.target_type,
            "target_id": log.target_id,
            "target_repr": log.target_repr,
            "company_id": log.company_id,
            "company_name": log.company_name,
            "details": log.details,
            "request_id": log.request_id,
            "ip": log.ip,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def compute_hash(*, prev_hash: str, log: AuditLog) -> str:
    return hashlib.sha256((prev_hash + canonical_content(log)).encode()).hexdigest()


def _lock_head() -> ChainHead:
    head = ChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        ChainHead.objects.bulk_create([ChainHead(pk=1, seq=0, hash=GENESIS_HASH)], ignore_conflicts=True)
        head = ChainHead.objects.select_for_update().get(pk=1)
    return head


def _target_fields(target: models.Model | Target | None) -> dict[str, str]:
    if target is None:
        return {"target_type": "", "target_id": "", "target_repr": ""}
    if isinstance(target, Target):
        return {"target_type": target.type, "target_id": target.id, "target_repr": target.repr[:200]}
    return {
        "target_type": target._meta.label_lower,
        "target_id": str(target.pk),
        "target_repr": str(target)[:200],
    }


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
    with transaction.atomic():
        head = _lock_head()
        log = AuditLog(
            seq=head.seq + 1,
            created_at=timezone.now(),
            actor_type=actor.type,
            actor_user_id=actor.user_id,
            actor_label=actor.label[:150],
            action=action,
            company_id=company.pk if company is not None else None,
            company_name=str(company)[:200] if company is not None else "",
            details=json_safe(details or {}),
            request_id=ctx.request_id,
            ip=ctx.ip,
            prev_hash=head.hash,
            **_target_fields(target),
        )
        log.hash = compute_hash(prev_hash=head.hash, log=log)
        log.save(force_insert=True)
        ChainHead.objects.filter(pk=1).update(seq=log.seq, hash=log.hash)
    return log
