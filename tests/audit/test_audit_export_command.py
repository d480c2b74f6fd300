import csv
import io
import json

import pytest
import time_machine
from django.core.management import CommandError, call_command

from audit.services import Actor, audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_days():
    logs = []
    for day in (1, 2, 3):
        with time_machine.travel(f"2026-03-0{day} 12:00Z", tick=False):
            logs.append(audit_record(action=f"a.day{day}", actor=Actor.system("t"), details={"day": day}))
    return logs


def test_it_exports_the_window_as_jsonl_with_hashes(three_days, tmp_path):
    out = tmp_path / "evidence.jsonl"
    call_command("audit_export", "--since", "2026-03-02", "--until", "2026-03-03", "--format", "jsonl", "-o", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["action"] for r in rows] == ["a.day2"]
    assert rows[0]["hash"] == three_days[1].hash
    assert rows[0]["prev_hash"] == three_days[0].hash
    assert rows[0]["details"] == {"day": 2}


def test_it_exports_csv(three_days, capsys):
    call_command("audit_export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["action"] for r in rows] == ["a.day1", "a.day2", "a.day3"]
    assert rows[2]["hash"] == three_days[2].hash
    assert json.loads(rows[0]["details"]) == {"day": 1}


def test_it_rejects_a_bad_window():
    with pytest.raises(CommandError, match="--since"):
        call_command("audit_export", "--since", "yesterday")
    with pytest.raises(CommandError, match="before --until"):
        call_command("audit_export", "--since", "2026-03-03", "--until", "2026-03-01")
