"""How the chain is hashed: what both the writer (``audit.services``) and the verifier
(``audit.selectors``) compute, kept below both so neither imports the other."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

from audit.models import AuditLog

GENESIS_HASH = "0" * 64


def canonical_content(log: AuditLog) -> str:
    """The record's content, in one canonical form (everything but its chain position)."""
    return json.dumps(
        {
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


def chain_hash(*, prev_hash: str, seq: int, content: str) -> str:
    """sha256(prev_hash + seq + "|" + content). PostgreSQL computes the same expression
    in the append statement (see ``audit.services._APPEND_SQL``); ``audit_verify``
    recomputes it here."""
    return hashlib.sha256(f"{prev_hash}{seq}|{content}".encode()).hexdigest()


def compute_hash(*, prev_hash: str, log: AuditLog) -> str:
    return chain_hash(prev_hash=prev_hash, seq=log.seq, content=canonical_content(log))
