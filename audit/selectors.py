"""Reading the audit trail: verification and export."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from audit.chain import GENESIS_HASH, compute_hash
from audit.models import AuditLog, ChainHead


@dataclass(frozen=True)
class Break:
    seq: int
    pk: int | None
    reason: str


@dataclass(frozen=True)
class Verification:
    checked: int
    broken: Break | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def audit_verify_chain(*, chunk_size: int = 5000) -> Verification:
    """Walk the chain in order; stop at the first record whose hash, link or sequence
    number is not what the records before it imply."""
    prev_hash, expected_seq, checked = GENESIS_HASH, 1, 0
    for log in AuditLog.objects.order_by("seq").iterator(chunk_size=chunk_size):
        if log.seq != expected_seq:
            return Verification(
                checked, Break(expected_seq, None, f"record #{expected_seq} is missing")
            )
        if log.prev_hash != prev_hash:
            return Verification(checked, Break(log.seq, log.pk, "link to the previous record is broken"))
        if compute_hash(prev_hash=prev_hash, log=log) != log.hash:
            return Verification(checked, Break(log.seq, log.pk, "content does not match its hash"))
        prev_hash, expected_seq, checked = log.hash, log.seq + 1, checked + 1
    head = ChainHead.objects.filter(pk=1).first()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    if (head_seq, head_hash) != (expected_seq - 1, prev_hash):
        return Verification(
            checked,
            Break(head_seq, None, f"chain ends at #{expected_seq - 1} but its head records #{head_seq}"),
        )
    return Verification(checked, None)


EXPORT_FIELDS = [
    "seq", "created_at", "actor_type", "actor_user_id", "actor_label", "action",
    "target_type", "target_id", "target_repr", "company_id", "company_name", "details",
    "request_id", "ip", "prev_hash", "hash",
]


def audit_export_rows(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: int | None = None,
    through_seq: int | None = None,
) -> Iterator[dict]:
    """Records in chain order; by time (``since`` inclusive, ``until`` exclusive) and/or by
    chain position (``after_seq`` exclusive, ``through_seq`` inclusive: an unbroken run)."""
    qs = AuditLog.objects.order_by("seq")
    if after_seq is not None:
        qs = qs.filter(seq__gt=after_seq)
    if through_seq is not None:
        qs = qs.filter(seq__lte=through_seq)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    for log in qs.iterator(chunk_size=5000):
        row = {name: getattr(log, name) for name in EXPORT_FIELDS}
        row["created_at"] = log.created_at.isoformat()
        yield row
