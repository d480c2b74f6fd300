"""``manage.py demo_data`` run again and again, as ``make demo`` does: the same API key,
the ports of this run, and the demo starting on the primary (or saying why not)."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command

from accounts.models import CompanyAPIKey
from audit.models import AuditLog
from audit.services import Actor
from regions.models import FailoverEvent, Region, RegionStatus
from regions.services import region_fail_over

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("DEMO_PRIMARY_REGION_PORT", "9101")
    monkeypatch.setenv("DEMO_SECONDARY_REGION_PORT", "9102")

    def run() -> str:
        out = io.StringIO()
        call_command("demo_data", stdout=out)
        return out.getvalue()

    return run


def printed_key(output: str) -> str:
    return re.search(r"API key for Acme Freight: .*\n  (\S+)\n", output).group(1)


def test_a_rerun_prints_the_same_api_key(demo, tmp_path):
    CompanyAPIKey.objects.all().delete()
    first = demo()
    second = demo()

    assert printed_key(first) == printed_key(second)
    assert "the same key as the last run" in second
    assert CompanyAPIKey.objects.filter(revoked=False).count() == 1
    assert f"Api-Key {printed_key(second)}" in second  # the curl uses it

    (tmp_path / "demo-api-key").unlink()  # the secret is lost: a new key, the old one revoked, said plainly
    third = demo()
    old_prefix = printed_key(first).partition(".")[0]
    assert printed_key(third) != printed_key(first)
    assert f"a NEW key (no key was kept from an earlier run); revoked the old demo key(s) {old_prefix}" in third
    assert CompanyAPIKey.objects.get(prefix=old_prefix).revoked
    assert AuditLog.objects.filter(action="billing.api_key.revoke", actor_label="make demo").count() == 1


def test_the_demo_regions_follow_the_ports_of_this_run(demo, monkeypatch):
    assert "Regions: Primary (eu-west) on :9101 (active), Secondary (us-east) on :9102 (standby)" in demo()
    assert Region.objects.get(slug="primary").base_url == "http://127.0.0.1:9101"

    monkeypatch.setenv("DEMO_PRIMARY_REGION_PORT", "9201")
    assert "Primary (eu-west) on :9201 (active)" in demo()
    assert Region.objects.get(slug="primary").base_url == "http://127.0.0.1:9201"


def test_a_rerun_after_a_game_day_starts_on_the_primary_and_says_so(demo):
    demo()
    Region.objects.update(status=RegionStatus.HEALTHY, consecutive_failures=0)
    region_fail_over(to=Region.objects.get(slug="secondary"), reason="game day drill", actor=Actor.system("gameday"))

    output = demo()

    assert Region.objects.get(is_active=True).slug == "primary"
    assert "Note: Secondary (us-east) was active since " in output and "(game day drill)" in output
    assert "traffic is back on Primary (eu-west), audited and alerted as a manual failover by 'make demo'" in output
    assert "`manage.py gameday` waits for the failover cooldown, until" in output
    back = FailoverEvent.objects.latest("epoch")
    assert back.kind == "manual" and back.actor == "make demo" and back.to_region.slug == "primary"
    assert AuditLog.objects.filter(action="region.failover.manual", actor_label="make demo").exists()
