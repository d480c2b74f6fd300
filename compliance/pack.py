"""The evidence zip: its files, their SOC 2 criteria, the manifest, and the check an
auditor (or ``soc2_evidence --verify``) runs on it.

The manifest lists every other file with its SHA-256, size and criteria, and seals
itself (``manifest_sha256`` over the rest of the manifest), so a changed byte anywhere
in the pack is found. The audit export is checked again link by link against the chain
heads the pack states for the period's two ends.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from audit.chain import compute_hash
from audit.models import AuditLog

MANIFEST = "manifest.json"
AUDIT_EXPORT = "audit/audit_export.jsonl"
AUDIT_VERIFY = "audit/audit_verify.json"

CRITERIA = {
    "CC6.1": "Logical access security: who can reach what",
    "CC6.2": "Registering, authorising and removing users",
    "CC6.3": "Role-based access, changed and removed as roles change",
    "CC7.2": "Monitoring system components for anomalies",
    "CC7.3": "Evaluating security events",
    "CC7.4": "Responding to incidents",
    "CC8.1": "Change management",
    "A1.2": "Availability: recovery infrastructure and its monitoring",
}


@dataclass(frozen=True)
class FileSpec:
    path: str
    criteria: tuple[str, ...]
    description: str
    columns: tuple[str, ...] = ()  # CSV files: the header, written even with no rows


ALL = tuple(CRITERIA)
FILES = {
    spec.path: spec
    for spec in [
        FileSpec("summary.md", ALL, "One-page summary of the pack"),
        FileSpec(AUDIT_EXPORT, ("CC7.2", "CC8.1"), "The audit trail of the period, with its chain hashes"),
        FileSpec(AUDIT_VERIFY, ("CC7.2", "CC8.1"), "audit_verify result and the chain heads at both ends"),
        FileSpec(
            "access/users.csv", ("CC6.1", "CC6.2", "CC6.3"), "Users, staff and superusers with groups and permissions",
            ("id", "username", "email", "active", "staff", "superuser", "groups", "direct_permissions", "companies",
             "date_joined", "last_login", "inactive_90_days"),
        ),
        FileSpec(
            "access/groups.csv", ("CC6.1", "CC6.3"), "Groups, their permissions and members",
            ("group", "permissions", "members"),
        ),
        FileSpec(
            "access/memberships.csv", ("CC6.1", "CC6.3"), "Company memberships and roles",
            ("company", "username", "role", "since", "user_active"),
        ),
        FileSpec(
            "access/api_keys.csv", ("CC6.1", "CC6.2"), "Company API keys with last use (never the secret)",
            ("company", "name", "prefix", "created", "last_used_at", "status", "expires", "unused_90_days"),
        ),
        FileSpec(
            "access/inactive_accounts.csv", ("CC6.2", "CC6.3"), "Active accounts unused for 90 days",
            ("username", "staff", "superuser", "last_login", "date_joined", "days_since_seen"),
        ),
        FileSpec(
            "access/access_changes.csv", ("CC6.2", "CC6.3"), "Every grant or removal of access in the period",
            ("seq", "at", "actor", "action", "target_type", "target", "company", "change", "field", "before", "after"),
        ),
        FileSpec(
            "changes/admin_log.csv", ("CC8.1",), "Django admin's history (LogEntry) for the period",
            ("at", "user", "action", "model", "object_id", "object", "message"),
        ),
        FileSpec("changes/admin_changes.json", ("CC8.1",), "Every admin change from the audit trail, before/after"),
        FileSpec(
            "changes/configuration_changes.csv", ("CC8.1",), "Policy, tier, schedule and switch changes",
            ("seq", "at", "actor", "action", "target_type", "target", "company", "area", "field", "before", "after"),
        ),
        FileSpec(
            "monitoring/failovers.csv", ("CC7.3", "CC7.4", "A1.2"), "Region failovers",
            ("decided_at", "kind", "from_region", "to_region", "actor", "reason", "forced", "pinned",
             "failing_since", "seconds_from_first_failure"),
        ),
        FileSpec(
            "monitoring/game_days.csv", ("CC7.4", "A1.2"), "Failover drills, RTO against the target",
            ("started_at", "region", "method", "detected_after_s", "rto_s", "rto_target_s", "within_target",
             "switched_to", "succeeded", "notes"),
        ),
        FileSpec(
            "monitoring/alerts.csv", ("CC7.2", "CC7.3"), "Alerts sent or failed, with delivery times",
            ("created_at", "kind", "severity", "title", "status", "slack", "email", "attempts", "sent_at",
             "delivery_seconds", "last_error"),
        ),
        FileSpec(
            "monitoring/ops_tasks.csv", ("CC7.3", "CC7.4"), "Ops tasks with time to acknowledge and close",
            ("created_at", "kind", "title", "severity", "status", "assignee", "acknowledged_at", "closed_at",
             "seconds_to_acknowledge", "seconds_to_close", "resolution_note"),
        ),
        FileSpec(
            "availability/monthly.csv", ("A1.2",), "Availability per month against the SLO",
            ("month", "from", "until", "slo_target_percent", "availability_percent", "covered_minutes",
             "downtime_minutes", "error_budget_minutes", "meets_slo"),
        ),
    ]
}


def csv_bytes(path: str, rows: Iterable[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FILES[path].columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue().encode()


def json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def jsonl_bytes(rows: Iterable[dict[str, Any]]) -> bytes:
    # The line form of ``audit_export --format jsonl``.
    return "".join(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n" for row in rows).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _seal(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())


def zip_build(*, files: dict[str, bytes], period: str, generated_at: datetime, generated_by: str) -> bytes:
    """The zip: the given files (every one of ``FILES``) and the manifest that seals them."""
    missing = set(FILES) - set(files)
    if missing:
        raise ValueError(f"evidence files missing: {sorted(missing)}")
    manifest: dict[str, Any] = {
        "period": period,
        "generated_at": generated_at.isoformat(),
        "generated_by": generated_by,
        "criteria": CRITERIA,
        "files": [
            {
                "path": path,
                "sha256": sha256(files[path]),
                "size": len(files[path]),
                "criteria": list(FILES[path].criteria),
                "description": FILES[path].description,
            }
            for path in FILES
        ],
    }
    manifest["manifest_sha256"] = _seal(manifest)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in FILES:
            archive.writestr(_entry(path, generated_at), files[path])
        archive.writestr(_entry(MANIFEST, generated_at), json_bytes(manifest))
    return buffer.getvalue()


def _entry(path: str, moment: datetime) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(path, date_time=moment.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


class PackInvalid(Exception):
    """The pack does not verify; the message names the file and what is wrong."""


@dataclass(frozen=True)
class PackCheck:
    period: str
    files: int
    audit_records: int
    head_at_start: str
    head_at_end: str


def zip_verify(data: bytes) -> PackCheck:
    """Re-check a pack: every file against the manifest, the manifest against its seal,
    and the audit export link by link between the stated chain heads."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        contents = {info.filename: archive.read(info) for info in archive.infolist()}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise PackInvalid(f"not a readable zip: {exc}")
    if MANIFEST not in contents:
        raise PackInvalid(f"{MANIFEST} is missing")
    try:
        manifest = json.loads(contents[MANIFEST])
        listed = {entry["path"]: entry for entry in manifest["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise PackInvalid(f"{MANIFEST} is not a valid manifest: {exc}")
    if manifest.get("manifest_sha256") != _seal(manifest):
        raise PackInvalid(f"{MANIFEST} was changed: its seal (manifest_sha256) does not match its content")
    for path in sorted(set(contents) - set(listed) - {MANIFEST}):
        raise PackInvalid(f"{path} is in the zip but not in the manifest")
    for path, entry in listed.items():
        if path not in contents:
            raise PackInvalid(f"{path} is listed in the manifest but missing from the zip")
        actual = sha256(contents[path])
        if actual != entry["sha256"]:
            raise PackInvalid(f"{path}: SHA-256 {actual} does not match the manifest's {entry['sha256']}")
        if len(contents[path]) != entry["size"]:
            raise PackInvalid(f"{path}: {len(contents[path])} bytes, the manifest says {entry['size']}")
    for path in (AUDIT_EXPORT, AUDIT_VERIFY):
        if path not in contents:
            raise PackInvalid(f"{path} is missing")
    return _chain_check(manifest, contents[AUDIT_EXPORT], contents[AUDIT_VERIFY], files=len(listed))


def _chain_check(manifest: dict[str, Any], export: bytes, verification: bytes, *, files: int) -> PackCheck:
    try:
        stated = json.loads(verification)
        start, end = stated["head_at_start"], stated["head_at_end"]
        rows = [json.loads(line) for line in export.decode().splitlines() if line.strip()]
    except (ValueError, KeyError, TypeError) as exc:
        raise PackInvalid(f"{AUDIT_VERIFY} or {AUDIT_EXPORT} cannot be read: {exc}")
    prev_hash, expected_seq = start["hash"], start["seq"] + 1
    for row in rows:
        seq = row.get("seq")
        where = f"{AUDIT_EXPORT}: audit chain BROKEN at record #{seq}"
        if seq != expected_seq:
            raise PackInvalid(f"{AUDIT_EXPORT}: audit chain BROKEN: record #{expected_seq} is missing")
        if row.get("prev_hash") != prev_hash:
            raise PackInvalid(f"{where}: link to the previous record is broken")
        try:
            log = AuditLog(**{k: v for k, v in row.items() if k not in ("seq", "prev_hash", "hash")})
            log.seq = seq
            log.created_at = datetime.fromisoformat(row["created_at"])
            recomputed = compute_hash(prev_hash=prev_hash, log=log)
        except (TypeError, ValueError, KeyError) as exc:
            raise PackInvalid(f"{where}: the record cannot be read: {exc}")
        if recomputed != row.get("hash"):
            raise PackInvalid(f"{where}: content does not match its hash")
        prev_hash, expected_seq = row["hash"], seq + 1
    if (expected_seq - 1, prev_hash) != (end["seq"], end["hash"]):
        raise PackInvalid(
            f"{AUDIT_EXPORT}: the export ends at #{expected_seq - 1} but the chain head at the period's end "
            f"is #{end['seq']} ({end['hash'][:12]}…)"
        )
    return PackCheck(
        period=str(manifest.get("period", "")),
        files=files,
        audit_records=len(rows),
        head_at_start=f"#{start['seq']} {start['hash']}",
        head_at_end=f"#{end['seq']} {end['hash']}",
    )
