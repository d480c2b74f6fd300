"""What ops read, per situation: automatic failover, manual failover, failback, stranded,
recovered. Nothing claims a failure or a recovery that did not happen, and no two open
tasks read alike. Real probes against fake regions on loopback, time moved by the clock."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from audit.services import Actor
from ops.models import Notification, OpsTask
from regions.gate import writes_refused
from regions.models import FailoverPolicy, Region
from regions.services import region_fail_over
from tests.regions.conftest import active_slug

T0 = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC)
OLIVIA = Actor.system("olivia")


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def run(cycle, clock, times: int = 1, step: int = 30):
    for _ in range(times):
        clock.shift(step)
        cycle()


def failover_alert() -> Notification:
    return Notification.objects.filter(kind="region.failover").latest("created_at")


def test_automatic_failover_says_what_failed_and_asks_why(cycle, clock, primary, secondary, fake_primary):
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)  # failing from 09:00:30, failed over at 09:01:30

    alert = failover_alert()
    assert alert.title == "Automatic failover: Primary → Secondary"
    assert alert.severity == "critical"
    assert "Primary had been failing for 1 min, so the gate moved traffic to Secondary at 09:01 UTC" in alert.text
    assert "find out why Primary failed" in alert.text
    assert "Traffic stays on Secondary until someone moves it" in alert.text  # failback is off
    assert alert.fields["Failing for"] == "1 min"
    task = OpsTask.objects.get(kind="region.failover")
    assert task.title == "Find out why Primary failed (automatic failover to Secondary at 09:01 UTC)"
    assert task.severity == "high"


def test_manual_failover_from_a_healthy_region_claims_no_failure(cycle, clock, primary, secondary):
    run(cycle, clock)
    region_fail_over(to=secondary, reason="db migration on primary", actor=OLIVIA)

    alert = failover_alert()
    assert alert.title == "Manual failover by olivia: Primary → Secondary"
    assert alert.severity == "warning"
    assert "Reason given: db migration on primary" in alert.text
    assert "Primary was passing its probes (status Healthy)" in alert.text
    for claim in ("failing for", "not failing", "find out why", "failed"):
        assert claim not in alert.text.lower()
    assert "Failing for" not in alert.fields
    task = OpsTask.objects.get(kind="region.failover")
    assert task.title == "Check Secondary after the manual failover from Primary by olivia at 09:00 UTC"
    assert "failed" not in task.title and "failed" not in task.details
    assert task.severity == "medium"

    # The next cycles see Primary healthy, ahead of Secondary: failback is possible, but
    # Primary never failed, so nothing calls it recovered.
    run(cycle, clock, 4)
    available = Notification.objects.get(kind="region.failback_available")
    assert available.title == "Failback available: Primary is healthy"
    assert "recovered" not in available.text
    assert "Primary is healthy and has not failed; traffic is on Secondary since the manual failover by olivia" in (
        available.text
    )
    assert not Notification.objects.filter(kind="region.recovered").exists()


def test_manual_failover_away_from_a_failing_region_asks_why_it_failed(
    cycle, clock, primary, secondary, fake_primary
):
    fake_primary.set_mode("fail")
    run(cycle, clock, 2)  # failing, not yet unhealthy
    region_fail_over(to=secondary, reason="primary is flapping", actor=OLIVIA, pin=True)

    alert = failover_alert()
    assert "Primary had been failing for 30 s" in alert.text
    assert "find out why Primary failed" in alert.text
    assert "Secondary is pinned: automation will not move traffic away until the pin is released" in alert.text
    task = OpsTask.objects.get(kind="region.failover")
    assert task.title == "Find out why Primary failed: olivia moved traffic to Secondary at 09:01 UTC"
    assert task.severity == "high"


def test_failback_says_the_region_came_back_and_blames_nobody(cycle, clock, primary, secondary, fake_primary):
    FailoverPolicy.objects.filter(pk=1).update(auto_failback=True)
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)
    fake_primary.set_mode("ok")
    run(cycle, clock, 3)
    clock.shift(dt.timedelta(minutes=9))
    run(cycle, clock)
    assert active_slug() == "primary"

    alert = failover_alert()
    assert alert.title == "Automatic failback: Secondary → Primary"
    assert alert.severity == "info"
    assert "Primary is healthy again and took traffic back from Secondary" in alert.text
    assert "find out why" not in alert.text and "had been failing" not in alert.text
    task = OpsTask.objects.filter(kind="region.failover").latest("created_at")
    assert task.title.startswith("Confirm Primary carries the load after the failback from Secondary at ")
    assert task.severity == "low"


def test_stranded_by_the_cooldown_says_why_and_how_long(
    cycle, clock, primary, secondary, fake_primary, fake_secondary
):
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)  # failover at 09:01:30; cooldown until 09:11:30
    fake_primary.set_mode("ok")
    run(cycle, clock, 3)  # Primary healthy again at 09:03:00
    fake_secondary.set_mode("fail")
    run(cycle, clock, 3)  # Secondary unhealthy at 09:04:30, inside the cooldown
    assert active_slug() == "secondary"

    stranded = Notification.objects.get(kind="region.failover_blocked")
    assert stranded.title == "Active region Secondary is down; traffic was not moved"
    assert "Why traffic stayed: cooldown after the last failover until 09:11:30 UTC." in stranded.text
    assert "Writes are refused (503 no_healthy_region) until a region serves." in stranded.text
    assert (
        "What to do: wait 7 min of cooldown (until 09:11:30 UTC): the gate then fails over to Primary; "
        "or fail over by hand now" in stranded.text
    )
    refusal = writes_refused()
    assert refusal is not None and refusal.cause == "cooldown"
    assert refusal.why == (
        "Secondary is failing its probes (3 in a row) and traffic stays on it: "
        "cooldown after the last failover until 09:11:30 UTC"
    )

    fake_secondary.set_mode("ok")
    run(cycle, clock, 3)
    restored = Notification.objects.get(kind="region.restored")
    assert restored.title == "Service restored: Secondary is serving again"
    assert "Secondary passed 3 probes in a row; writes are accepted again" in restored.text
    assert writes_refused() is None


def test_stranded_by_a_pin_says_release_it(cycle, clock, primary, secondary, fake_primary):
    FailoverPolicy.objects.filter(pk=1).update(pinned_region=primary, pinned_by="olivia")
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)

    stranded = Notification.objects.get(kind="region.failover_blocked")
    assert "Why traffic stayed: Primary is pinned by olivia" in stranded.text
    assert "What to do: release the pin (failover policy page → 'Release the pin')" in stranded.text
    assert writes_refused().cause == "pin"


def test_stranded_without_a_healthy_standby_says_fix_it(
    cycle, clock, primary, secondary, fake_primary, fake_secondary
):
    FailoverPolicy.objects.filter(pk=1).update(recovery_threshold=10)
    fake_secondary.set_mode("fail")
    run(cycle, clock, 3)  # the standby is unhealthy first
    fake_secondary.set_mode("ok")
    run(cycle, clock, 1)  # passing again, not yet recovered (10 needed)
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)

    stranded = Notification.objects.get(kind="region.failover_blocked")
    assert "Why traffic stayed: no standby region is healthy." in stranded.text
    assert "What to do: fix the standby (Secondary unhealthy): the gate fails over once one passes 10 probes" in (
        stranded.text
    )
    assert writes_refused().cause == "no_standby"


def test_a_disabled_standby_is_not_all_regions_down(cycle, clock, primary, secondary, fake_primary):
    Region.objects.filter(pk=secondary.pk).update(enabled=False)
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)

    stranded = Notification.objects.get(kind="region.failover_blocked")
    assert "What to do: fix the standby (Secondary disabled)" in stranded.text


def test_a_standby_is_called_recovered_only_after_it_failed(cycle, clock, primary, secondary, fake_primary):
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)
    fake_primary.set_mode("ok")
    run(cycle, clock, 3)

    available = Notification.objects.get(kind="region.failback_available")
    assert available.title == "Failback available: Primary has recovered"
    assert "Primary passed 3 probes in a row after failing" in available.text


def test_no_two_open_tasks_read_alike(cycle, clock, primary, secondary, fake_primary):
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)  # automatic failover Primary → Secondary
    fake_primary.set_mode("ok")
    run(cycle, clock, 3)
    region_fail_over(to=Region.objects.get(slug="primary"), reason="primary is back", actor=OLIVIA)
    clock.shift(dt.timedelta(minutes=11))
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)  # the same move again, later
    assert active_slug() == "secondary"

    titles = list(OpsTask.objects.filter(status__in=["open", "acknowledged"]).values_list("title", flat=True))
    assert len(titles) == 3
    assert len(set(titles)) == 3, titles
