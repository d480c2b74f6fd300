"""The gate: when traffic moves, when it must not, and what ops are told."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from audit.models import AuditLog
from audit.services import Actor
from ops.models import Notification, OpsTask
from regions.models import FailoverEvent, FailoverKind, FailoverPolicy, Region, RegionStatus
from regions.services import region_fail_over
from tests.regions.conftest import active_slug

T0 = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def run(cycle, clock, times: int = 1, step: int = 30):
    report = None
    for _ in range(times):
        clock.shift(step)
        report = cycle()
    return report


def test_two_failures_do_not_fail_over_the_third_does(cycle, clock, primary, secondary, fake_primary):
    fake_primary.set_mode("fail")
    run(cycle, clock, 2)
    assert active_slug() == "primary"
    assert FailoverEvent.objects.count() == 0

    report = run(cycle, clock)

    assert report.gate.action == "failover"
    assert active_slug() == "secondary"
    event = FailoverEvent.objects.get()
    assert (event.from_region.slug, event.to_region.slug, event.kind) == ("primary", "secondary", "automatic")
    assert event.failing_since == T0 + dt.timedelta(seconds=30)  # the first failing probe
    assert event.decided_at == T0 + dt.timedelta(seconds=90)
    assert "3 consecutive probes" in event.reason


def test_a_success_in_between_resets_the_count(cycle, clock, primary, secondary, fake_primary):
    fake_primary.set_mode("fail")
    run(cycle, clock, 2)
    fake_primary.set_mode("ok")
    run(cycle, clock)
    fake_primary.set_mode("fail")
    run(cycle, clock, 2)

    assert active_slug() == "primary"
    primary.refresh_from_db()
    assert primary.consecutive_failures == 2
    assert primary.status == RegionStatus.HEALTHY


def test_a_hanging_primary_fails_by_timeout(cycle, clock, primary, secondary, fake_primary):
    fake_primary.set_mode("hang")
    run(cycle, clock, 3)
    assert active_slug() == "secondary"
    primary.refresh_from_db()
    assert primary.last_error.startswith("timeout")


def test_failover_is_audited_alerted_and_leaves_an_ops_task(cycle, clock, primary, secondary, fake_primary):
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)
    event = FailoverEvent.objects.get()

    audit = AuditLog.objects.get(action="region.failover.automatic")
    assert audit.target_id == str(event.pk)
    assert audit.actor_label == "region-gate"
    assert audit.details["from"] == "primary" and audit.details["to"] == "secondary"

    alert = Notification.objects.get(kind="region.failover")
    assert "Primary → Secondary" in alert.title
    assert "failing for 1 min, so" in alert.text  # first failing probe at +30 s, decided at +90 s
    assert "Check:" in alert.text
    assert alert.severity == "critical"

    task = OpsTask.objects.get(kind="region.failover")
    assert task.dedup_key == f"region.failover.{event.epoch}"


def test_it_never_fails_over_to_an_unhealthy_standby(cycle, clock, primary, secondary, fake_primary, fake_secondary):
    fake_secondary.set_mode("fail")
    run(cycle, clock, 3)  # standby is unhealthy now
    fake_primary.set_mode("fail")
    run(cycle, clock)
    fake_secondary.set_mode("ok")
    run(cycle, clock, 2)  # primary failed 3 times; standby passes, but below the recovery threshold

    assert active_slug() == "primary"
    assert FailoverEvent.objects.count() == 0
    assert Notification.objects.filter(kind="region.failover_blocked").count() == 1

    run(cycle, clock)  # the standby's 3rd good probe: healthy again, and traffic moves
    assert active_slug() == "secondary"


def test_it_never_fails_over_to_a_standby_that_just_started_failing(
    cycle, clock, primary, secondary, fake_primary, fake_secondary
):
    fake_primary.set_mode("fail")
    run(cycle, clock, 2)
    fake_secondary.set_mode("fail")  # one failed probe: still "healthy" by count, but failing
    run(cycle, clock)
    assert active_slug() == "primary"
    assert FailoverEvent.objects.count() == 0


def test_all_regions_down_no_failover_and_one_alert(cycle, clock, primary, secondary, fake_primary, fake_secondary):
    fake_primary.set_mode("fail")
    fake_secondary.set_mode("fail")
    run(cycle, clock, 10)

    assert active_slug() == "primary"
    assert FailoverEvent.objects.count() == 0
    alert = Notification.objects.get(kind="region.all_down")
    assert alert.title == "All regions unreachable"
    assert FailoverPolicy.objects.get().stranded_since is not None

    fake_primary.set_mode("ok")
    run(cycle, clock, 3)
    assert Notification.objects.filter(kind="region.restored").count() == 1
    fake_primary.set_mode("fail")
    fake_secondary.set_mode("fail")
    run(cycle, clock, 5)
    assert Notification.objects.filter(kind="region.all_down").count() == 2  # a new transition


def test_a_flapping_primary_does_not_flap_traffic(cycle, clock, primary, secondary, fake_primary):
    for _ in range(10):
        fake_primary.set_mode("fail")
        run(cycle, clock, 2)
        fake_primary.set_mode("ok")
        run(cycle, clock)
    assert active_slug() == "primary"
    assert FailoverEvent.objects.count() == 0


def test_cooldown_holds_the_next_automatic_failover(cycle, clock, primary, secondary, fake_primary, fake_secondary):
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)
    assert active_slug() == "secondary"
    # The former primary recovers, ops fail back by hand, then it fails again at once.
    fake_primary.set_mode("ok")
    run(cycle, clock, 3)
    region_fail_over(to=Region.objects.get(slug="primary"), reason="game day over", actor=Actor.system("t"))
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)  # 90 s after the manual failback: cooldown is 10 min

    assert active_slug() == "primary"
    assert "cooldown" in FailoverPolicy.objects.get().stranded_reason

    clock.shift(dt.timedelta(minutes=10))
    run(cycle, clock)
    assert active_slug() == "secondary"


def test_a_pin_holds_against_automation(cycle, clock, primary, secondary, fake_primary):
    FailoverPolicy.objects.filter(pk=1).update(pinned_region=primary, pinned_by="olivia")
    fake_primary.set_mode("fail")
    run(cycle, clock, 5)

    assert active_slug() == "primary"
    blocked = Notification.objects.get(kind="region.failover_blocked")
    assert "pinned by olivia" in blocked.text


def test_failback_off_keeps_traffic_and_says_failback_available(cycle, clock, primary, secondary, fake_primary):
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)
    fake_primary.set_mode("ok")
    run(cycle, clock, 2)
    assert not Notification.objects.filter(kind="region.failback_available").exists()  # not recovered yet
    run(cycle, clock, 1 + 40)  # recovered, and long past the cooldown

    assert active_slug() == "secondary"
    assert Notification.objects.filter(kind="region.failback_available").count() == 1


def test_failback_on_waits_for_recovery_threshold_and_cooldown(cycle, clock, primary, secondary, fake_primary):
    FailoverPolicy.objects.filter(pk=1).update(auto_failback=True)
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)
    fake_primary.set_mode("ok")
    run(cycle, clock, 3)  # recovered at +180 s but the failover was at +90 s: cooldown runs to +690 s
    assert active_slug() == "secondary"

    clock.shift(dt.timedelta(minutes=9))
    run(cycle, clock)
    assert active_slug() == "primary"
    event = FailoverEvent.objects.latest("decided_at")
    assert event.kind == FailoverKind.FAILBACK
    assert FailoverEvent.objects.count() == 2


def test_standby_unhealthy_and_recovered_alert_once_per_transition(cycle, clock, primary, secondary, fake_secondary):
    fake_secondary.set_mode("fail")
    run(cycle, clock, 6)
    fake_secondary.set_mode("ok")
    run(cycle, clock, 6)
    fake_secondary.set_mode("fail")
    run(cycle, clock, 4)

    assert Notification.objects.filter(kind="region.unhealthy").count() == 2
    assert Notification.objects.filter(kind="region.recovered").count() == 1
    first = Notification.objects.filter(kind="region.unhealthy").earliest("created_at")
    assert first.title == "Standby region Secondary is unhealthy"


def test_single_region_mode_never_moves_traffic(cycle, clock, primary, secondary, fake_primary):
    FailoverPolicy.objects.filter(pk=1).update(multi_region_enabled=False)
    fake_primary.set_mode("fail")
    run(cycle, clock, 5)
    assert active_slug() == "primary"
    assert FailoverEvent.objects.count() == 0


def test_an_active_region_disabled_by_ops_alerts_once_without_crashing_the_gate(cycle, clock, primary, secondary):
    """Single-region mode: nothing may take over, so the gate reports it (once)."""
    FailoverPolicy.objects.filter(pk=1).update(multi_region_enabled=False)
    Region.objects.filter(pk=primary.pk).update(enabled=False)  # healthy, never failed: failing_since is None

    report = run(cycle, clock)
    run(cycle, clock, 3)

    assert report.gate.action == "stranded"
    alert = Notification.objects.get(kind="region.down")
    assert "Primary was disabled by ops while it was the active region" in alert.text
    assert alert.fields["Failing for"] == "disabled by ops"
    assert active_slug() == "primary"


def test_a_recovered_primary_is_announced_while_a_pin_holds_traffic(cycle, clock, primary, secondary, fake_primary):
    region_fail_over(to=secondary, reason="db migration", pin=True, actor=Actor.system("olivia"))
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)
    fake_primary.set_mode("ok")
    report = run(cycle, clock, 3)  # recovery threshold reached

    assert report.gate.action == "failback_available"
    assert active_slug() == "secondary"  # the pin holds
    alert = Notification.objects.get(kind="region.failback_available")
    assert "Traffic stays on Secondary because Secondary is pinned by olivia (db migration)" in alert.text
    assert "release the pin" in alert.text

    run(cycle, clock, 5)
    assert Notification.objects.filter(kind="region.failback_available").count() == 1  # once per recovery


def test_single_region_mode_announces_a_recovered_former_primary(cycle, clock, primary, secondary, fake_primary):
    FailoverPolicy.objects.filter(pk=1).update(multi_region_enabled=False)
    region_fail_over(to=secondary, reason="maintenance on primary", actor=Actor.system("t"))
    fake_primary.set_mode("fail")
    run(cycle, clock, 3)
    fake_primary.set_mode("ok")
    run(cycle, clock, 6)

    recovered = Notification.objects.get(kind="region.recovered")
    assert recovered.title == "Standby region Primary recovered"
    assert active_slug() == "secondary"


def test_single_region_mode_one_alert_per_outage(cycle, clock, primary, secondary, fake_primary):
    FailoverPolicy.objects.filter(pk=1).update(multi_region_enabled=False)
    fake_primary.set_mode("fail")
    run(cycle, clock, 6)

    outage = Notification.objects.exclude(kind="region.restored")
    assert list(outage.values_list("kind", flat=True)) == ["region.down"]
    assert "Active region Primary is down" in outage.get().title

    fake_primary.set_mode("ok")
    run(cycle, clock, 6)
    assert Notification.objects.filter(kind="region.restored").count() == 1
    assert Notification.objects.count() == 2
