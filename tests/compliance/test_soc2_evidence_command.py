"""``soc2_evidence``: the pack's files against a known period, its manifest, and
``--verify`` failing on any changed byte."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile

import pytest
import time_machine
from django.core.management import CommandError, call_command

from audit.models import AuditLog
from compliance.pack import FILES, MANIFEST, _seal
from tests.compliance.conftest import BUILT_AT, PERIOD, at

pytestmark = pytest.mark.django_db


def build(tmp_path, period: str = PERIOD):
    out = tmp_path / "evidence.zip"
    with time_machine.travel(BUILT_AT, tick=False):
        call_command("soc2_evidence", "--period", period, "-o", str(out))
    return out


def members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def table(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def rezip(path, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def verify(path, capsys=None) -> str:
    call_command("soc2_evidence", "--verify", str(path))
    return capsys.readouterr().out if capsys else ""


def iso(text: str) -> str:
    return at(text).isoformat()


def test_the_pack_holds_the_periods_evidence_file_by_file(quarter, tmp_path):
    files = members(build(tmp_path))
    assert set(files) == set(FILES) | {MANIFEST}

    # The manifest: every file's hash, size and criteria; sealed.
    manifest = json.loads(files[MANIFEST])
    assert manifest["period"] == PERIOD and manifest["generated_by"] == "manage.py soc2_evidence"
    assert manifest["manifest_sha256"] == _seal(manifest)
    assert {e["path"]: e["sha256"] for e in manifest["files"]} == {
        name: hashlib.sha256(data).hexdigest() for name, data in files.items() if name != MANIFEST
    }
    assert {e["path"]: e["size"] for e in manifest["files"]} == {n: len(d) for n, d in files.items() if n != MANIFEST}
    criteria = {e["path"]: e["criteria"] for e in manifest["files"]}
    assert criteria["access/access_changes.csv"] == ["CC6.2", "CC6.3"]
    assert criteria["availability/monthly.csv"] == ["A1.2"]
    assert {c for cs in criteria.values() for c in cs} == {
        "CC6.1", "CC6.2", "CC6.3", "CC7.2", "CC7.3", "CC7.4", "CC8.1", "A1.2"
    }

    # The audit trail: exactly the period's records, as audit_export writes them, between its chain heads.
    in_period = list(AuditLog.objects.filter(created_at__gte=at("2026-10-01 00:00Z"),
                                             created_at__lt=at("2026-12-01 00:00Z")).order_by("seq"))
    assert [log.action for log in in_period] == [
        "billing.api_key.create", "billing.api_key.create", "auth.login", "admin.auth.group.add",
        "admin.auth.user.change", "admin.waffle.switch.add", "admin.waffle.switch.change",
        "admin.regions.failoverpolicy.change", "billing.api_key.revoke", "auth.login", "admin.auth.user.change",
    ]
    exported = tmp_path / "export.jsonl"
    call_command("audit_export", "--since", "2026-10-01", "--until", "2026-12-01", "-o", str(exported))
    assert files["audit/audit_export.jsonl"] == exported.read_bytes()
    before = AuditLog.objects.get(action="test.before_the_period")
    verification = json.loads(files["audit/audit_verify.json"])
    assert verification["whole_chain_ok"] is True and verification["first_break"] is None
    assert verification["head_at_start"] == {"seq": before.seq, "hash": before.hash, "moment": iso("2026-10-01 00:00Z")}
    assert verification["head_at_end"] == {
        "seq": in_period[-1].seq, "hash": in_period[-1].hash, "moment": iso("2026-12-01 00:00Z")
    }
    assert verification["records_in_period"] == 11

    # Access review.
    users = {row["username"]: row for row in table(files["access/users.csv"])}
    assert list(users) == ["dora", "ivan", "nina", "olivia", "sam"]
    assert users["olivia"] | {"id": ""} == {
        "id": "", "username": "olivia", "email": "olivia@transbot.local", "active": "True", "staff": "True",
        "superuser": "True", "groups": "", "direct_permissions": "", "companies": "",
        "date_joined": iso("2026-01-05 09:00Z"), "last_login": iso("2026-11-15 09:00Z"), "inactive_90_days": "False",
    }
    assert (users["sam"]["staff"], users["sam"]["superuser"], users["sam"]["groups"]) == ("True", "False", "Support")
    assert users["nina"]["inactive_90_days"] == "True"
    assert (users["ivan"]["companies"], users["ivan"]["active"], users["ivan"]["inactive_90_days"]) == (
        "acme (owner)", "False", "False"  # deactivated in the period: no longer an open account
    )
    assert users["dora"]["active"] == "False" and users["dora"]["inactive_90_days"] == "False"
    assert table(files["access/groups.csv"]) == [
        {"group": "Support", "permissions": "ops.change_opstask", "members": "sam"}
    ]
    assert [(m["company"], m["username"], m["role"]) for m in table(files["access/memberships.csv"])] == [
        ("acme", "ivan", "owner"), ("acme", "nina", "member"),
    ]
    keys = {k["name"]: k for k in table(files["access/api_keys.csv"])}
    assert keys["backend"] == {
        "company": "acme", "name": "backend", "prefix": quarter.key_prefixes["backend"],
        "created": iso("2026-10-05 12:00Z"), "last_used_at": iso("2026-11-28 17:00Z"), "status": "active",
        "expires": "", "unused_90_days": "False",
    }
    assert (keys["old"]["status"], keys["old"]["last_used_at"]) == ("revoked", "")
    assert table(files["access/inactive_accounts.csv"]) == [
        {"username": "nina", "staff": "False", "superuser": "False", "last_login": "",
         "date_joined": iso("2026-06-01 09:00Z"), "days_since_seen": "184"},
    ]
    changes = [(r["action"], r["target"], r["change"], r["field"], r["before"], r["after"])
               for r in table(files["access/access_changes.csv"])]
    backend_repr = f"backend ({quarter.key_prefixes['backend']})"
    old_repr = f"old ({quarter.key_prefixes['old']})"
    assert changes[:2] == [
        ("billing.api_key.create", backend_repr, "grant", "", "", ""),
        ("billing.api_key.create", old_repr, "grant", "", "", ""),
    ]
    assert changes[2][:4] == ("admin.auth.group.add", "Support", "grant", "permissions")
    assert "Can change ops task" in changes[2][5]
    assert changes[3:] == [
        ("admin.auth.user.change", "sam", "grant", "groups", "", "Support"),
        ("admin.auth.user.change", "sam", "grant", "is_staff", "False", "True"),
        ("billing.api_key.revoke", old_repr, "removal", "", "", ""),
        ("admin.auth.user.change", "ivan", "removal", "is_active", "True", "False"),
    ]
    assert {r["actor"] for r in table(files["access/access_changes.csv"])} == {"olivia"}

    # Change management.
    assert [(e["user"], e["action"], e["model"], e["object"]) for e in table(files["changes/admin_log.csv"])] == [
        ("olivia", "add", "auth.group", "Support"),
        ("olivia", "change", "auth.user", "sam"),
        ("olivia", "add", "waffle.switch", "new_pricing"),
        ("olivia", "change", "waffle.switch", "new_pricing"),
        ("olivia", "change", "auth.user", "ivan"),
    ]
    audited = json.loads(files["changes/admin_changes.json"])
    assert [(c["action"], c["actor"]) for c in audited] == [
        ("admin.auth.group.add", "olivia"), ("admin.auth.user.change", "olivia"),
        ("admin.waffle.switch.add", "olivia"), ("admin.waffle.switch.change", "olivia"),
        ("admin.regions.failoverpolicy.change", "olivia"), ("admin.auth.user.change", "olivia"),
    ]
    assert audited[1]["changes"]["is_staff"] == {"before": False, "after": True}
    config = [(r["area"], r["action"], r["field"], r["before"], r["after"])
              for r in table(files["changes/configuration_changes.csv"]) if r["field"] in ("active", "slo_target")]
    assert config == [
        ("switches", "admin.waffle.switch.add", "active", "", "False"),
        ("switches", "admin.waffle.switch.change", "active", "False", "True"),
        ("policy", "admin.regions.failoverpolicy.change", "slo_target", "99.900", "99.950"),
    ]

    # Monitoring and incident response.
    assert table(files["monitoring/failovers.csv"]) == [{
        "decided_at": iso("2026-10-20 04:00Z"), "kind": "automatic", "from_region": "primary",
        "to_region": "secondary", "actor": "region-gate", "reason": "3 failed probes", "forced": "False",
        "pinned": "False", "failing_since": iso("2026-10-20 02:00Z"), "seconds_from_first_failure": "7200.0",
    }]
    games = table(files["monitoring/game_days.csv"])
    assert [(g["started_at"], g["rto_s"], g["rto_target_s"], g["within_target"], g["detected_after_s"])
            for g in games] == [
        (iso("2026-11-05 10:00Z"), "95.0", "900", "True", "92.0"),
        (iso("2026-11-12 10:00Z"), "1000.0", "900", "False", "300.0"),
    ]
    alerts = table(files["monitoring/alerts.csv"])
    assert [(a["title"], a["status"], a["slack"], a["attempts"], a["delivery_seconds"], a["last_error"])
            for a in alerts] == [
        ("Failed over to Secondary", "sent", "sent", "1", "3.0", ""),
        ("Acme over its quotes", "failed", "failed", "5", "", "Slack said 500"),
    ]
    tasks = table(files["monitoring/ops_tasks.csv"])
    assert [(t["title"], t["status"], t["assignee"], t["seconds_to_acknowledge"], t["seconds_to_close"])
            for t in tasks] == [
        ("Look at the failover", "resolved", "olivia", "300.0", "3900.0"),
        ("Acme over its quotes", "open", "", "", ""),
    ]

    # Availability: hourly probes; two failed hours in October (120 of 44,640 minutes).
    months = table(files["availability/monthly.csv"])
    assert [(m["month"], m["availability_percent"], m["covered_minutes"], m["downtime_minutes"], m["meets_slo"])
            for m in months] == [
        ("2026-10", str(round(100 * (1 - 120 / 44640), 4)), "44640.0", "120.0", "no"),
        ("2026-11", "100.0", "43200.0", "0.0", "yes"),
    ]
    assert {m["slo_target_percent"] for m in months} == {"99.95"}

    # The one-page summary says the same.
    summary = files["summary.md"].decode()
    for line in [
        "# SOC 2 evidence, 2026-10-01 to 2026-11-30",
        "11 records in the period",
        f"Chain head at the end: #{in_period[-1].seq} `{in_period[-1].hash}`",
        "5 users: 3 active, 2 staff, 1 superusers; 1 active accounts unused for 90 days.",
        "5 grants and 2 removals of access in the period.",
        "1 failovers; 2 game days, 1 within the 15 min RTO target.",
        "2 alerts: 1 sent (median delivery 3 s), 1 failed.",
        "2 ops tasks: median time to acknowledge 5 min, to close 1 h 5 min; 1 still open.",
        "| 2026-10 | 99.7312 % | 99.95 % | no |",
        "| 2026-11 | 100.0 % | 99.95 % | yes |",
    ]:
        assert line in summary, line
    assert len(summary.splitlines()) < 60  # one page


def test_the_export_is_audited_with_the_zips_hash(quarter, tmp_path):
    out = build(tmp_path)
    record = AuditLog.objects.get(action="compliance.evidence.export")
    assert record.details == {
        "period": PERIOD, "sha256": hashlib.sha256(out.read_bytes()).hexdigest(), "size": out.stat().st_size
    }
    assert record.actor_label == "manage.py soc2_evidence"


def test_a_pack_verifies_and_one_flipped_byte_in_any_file_fails_verify(quarter, tmp_path, capsys):
    out = build(tmp_path)
    capsys.readouterr()
    assert "verifies: 17 files match the manifest; 11 audit records chain" in verify(out, capsys)
    files = members(out)
    for name, data in files.items():
        tampered = bytearray(data)
        tampered[len(data) // 2] ^= 0x01
        bad = tmp_path / "tampered.zip"
        rezip(bad, {**files, name: bytes(tampered)})
        with pytest.raises(CommandError, match="does NOT verify") as refused:
            verify(bad)
        assert name in str(refused.value), (name, str(refused.value))


def _reseal(files: dict[str, bytes], name: str, data: bytes) -> dict[str, bytes]:
    """What a careful forger does: change a file and fix the manifest up to match."""
    manifest = json.loads(files[MANIFEST])
    for entry in manifest["files"]:
        if entry["path"] == name:
            entry["sha256"], entry["size"] = hashlib.sha256(data).hexdigest(), len(data)
    manifest["manifest_sha256"] = _seal(manifest)
    return {**files, name: data, MANIFEST: json.dumps(manifest).encode()}


def test_a_rewritten_or_dropped_audit_record_fails_the_chain_check_even_with_a_fixed_manifest(quarter, tmp_path):
    files = members(build(tmp_path))
    rows = [json.loads(line) for line in files["audit/audit_export.jsonl"].decode().splitlines()]
    revoke = next(row for row in rows if row["action"] == "billing.api_key.revoke")

    forged = [{**row, "actor_label": "someone-else"} if row is revoke else row for row in rows]
    bad = tmp_path / "forged.zip"
    rezip(bad, _reseal(files, "audit/audit_export.jsonl", "".join(json.dumps(r) + "\n" for r in forged).encode()))
    with pytest.raises(CommandError, match=rf"audit chain BROKEN at record #{revoke['seq']}: content does not match"):
        verify(bad)

    dropped = rows[:3] + rows[4:]
    rezip(bad, _reseal(files, "audit/audit_export.jsonl", "".join(json.dumps(r) + "\n" for r in dropped).encode()))
    with pytest.raises(CommandError, match=rf"record #{rows[3]['seq']} is missing"):
        verify(bad)

    rezip(bad, _reseal(files, "audit/audit_export.jsonl", "".join(json.dumps(r) + "\n" for r in rows[:-1]).encode()))
    with pytest.raises(CommandError, match=rf"ends at #{rows[-2]['seq']} but the chain head at the period's end"):
        verify(bad)


def test_verify_refuses_what_is_not_a_pack(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(CommandError, match="does NOT verify: not a readable zip"):
        verify(junk)
    with pytest.raises(CommandError, match="--verify: cannot read"):
        verify(tmp_path / "missing.zip")
    rezip(junk, {"summary.md": b"hello"})
    with pytest.raises(CommandError, match="manifest.json is missing"):
        verify(junk)


@pytest.mark.parametrize(
    ("period", "says"),
    [
        ("2026-10-01", "--period: '2026-10-01' is not FIRST..LAST"),
        ("2026-13-01..2026-12-31", "--period: '2026-13-01' is not a date"),
        ("2026-12-31..2026-10-01", "--period: the first day 2026-12-31 is after the last day 2026-10-01"),
        ("last quarter", "--period: 'last quarter' is not FIRST..LAST"),
    ],
)
def test_a_bad_period_is_refused_naming_the_option_and_nothing_is_written(tmp_path, period, says):
    out = tmp_path / "evidence.zip"
    with pytest.raises(CommandError) as refused:
        call_command("soc2_evidence", "--period", period, "-o", str(out))
    assert str(refused.value).startswith(says), str(refused.value)
    assert not out.exists() and not AuditLog.objects.filter(action__startswith="compliance.").exists()


def test_the_period_and_the_output_are_required(tmp_path):
    with pytest.raises(CommandError, match="--period is required"):
        call_command("soc2_evidence", "-o", str(tmp_path / "e.zip"))
    with pytest.raises(CommandError, match="-o/--output is required"):
        call_command("soc2_evidence", "--period", PERIOD)
    with pytest.raises(CommandError, match="-o/--output: folder .* does not exist"):
        call_command("soc2_evidence", "--period", PERIOD, "-o", str(tmp_path / "no" / "e.zip"))


def test_the_pack_reads_every_companys_rows_whatever_scope_its_caller_is_in(quarter):
    from accounts.models import Membership
    from compliance.periods import period_parse
    from compliance.services import evidence_pack_build
    from core import tenant_scope

    with tenant_scope.scoped(tenant_scope.NOTHING):
        assert Membership.objects.count() == 0  # row-level security hides every tenant row here
        with time_machine.travel(BUILT_AT, tick=False):
            built = evidence_pack_build(period=period_parse(PERIOD), by="test")
    files = members(io.BytesIO(built.data))
    assert len(table(files["access/memberships.csv"])) == 2
    assert len(table(files["access/api_keys.csv"])) == 2
    assert len(table(files["monitoring/ops_tasks.csv"])) == 2
