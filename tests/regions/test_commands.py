"""check_regions, gameday and the fake_region server they rely on."""

from __future__ import annotations

from io import StringIO

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit.models import AuditLog
from regions.models import FailoverEvent, FailoverPolicy, GameDay, Region
from regions.services import policy_sync_schedule
from tests.regions.conftest import active_slug


def test_check_regions_prints_each_region_and_the_gate(primary, secondary, fake_secondary):
    fake_secondary.set_mode("fail")
    out = StringIO()
    call_command("check_regions", stdout=out)
    text = out.getvalue()
    assert "primary" in text and "ok" in text
    assert "secondary" in text and "FAIL" in text and "unexpected status 503" in text
    assert "gate: none" in text


def test_the_fake_region_obeys_its_control_endpoint(fake_primary):
    url = fake_primary.base_url
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.post(f"{url}/_control/fail").json()["mode"] == "fail"
    assert httpx.get(f"{url}/healthz").status_code == 503
    httpx.post(f"{url}/_control/hang")
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{url}/healthz", timeout=0.3)
    httpx.post(f"{url}/_control/recover")
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.post(f"{url}/api/v1/anything", json={"a": 1}).json()["method"] == "POST"
    assert fake_primary.requests[-1][:2] == ("POST", "/api/v1/anything")


@pytest.mark.django_db(transaction=True)
def test_gameday_takes_the_primary_down_measures_and_restores(primary, secondary, fake_primary):
    out = StringIO()
    call_command("gameday", "--drive", "--interval", "0", stdout=out)

    assert active_slug() == "secondary"
    game = GameDay.objects.get()
    assert game.succeeded and game.method == "fake-region" and game.switched_to.slug == "secondary"
    assert game.detected_after_s is not None and game.switched_after_s >= game.detected_after_s
    assert fake_primary.mode == "ok"  # restored
    text = out.getvalue()
    assert "RTO:" in text and "against the 15 min target — met; traffic moved to Secondary" in text
    assert "fail back by hand" in text
    assert game.notes.startswith("RTO ") and game.notes.endswith("within the 15 min target")
    assert FailoverEvent.objects.get().kind == "automatic"
    assert AuditLog.objects.filter(action__startswith="region.gameday.").count() == 2


def _refusal(*args) -> CommandError:
    with pytest.raises(CommandError) as refused:
        call_command("gameday", "--drive", "--interval", "0", *args, stdout=StringIO())
    return refused.value


def test_gameday_refuses_during_the_cooldown(primary, secondary, fake_primary, policy):
    policy.last_failover_at = timezone.now()
    policy.save()
    refused = _refusal()
    assert refused.returncode == 2
    assert "Game day refused, nothing was taken down: the cooldown after the last failover runs until" in str(refused)
    assert fake_primary.mode == "ok" and not GameDay.objects.exists()
    assert not AuditLog.objects.filter(action="region.gameday.start").exists()


def test_gameday_refuses_while_the_active_region_is_pinned(primary, secondary, policy):
    FailoverPolicy.objects.filter(pk=policy.pk).update(pinned_region=primary, pinned_by="olivia")
    refused = _refusal()
    assert refused.returncode == 2 and "Primary is pinned by olivia: release the pin first" in str(refused)


def test_gameday_refuses_without_a_healthy_standby(primary, secondary, fake_secondary):
    fake_secondary.set_mode("fail")  # the first probe cycle sees it failing
    refused = _refusal()
    assert refused.returncode == 2
    assert "no standby region is healthy (Secondary healthy (1 failing probes)): nowhere to fail over to" in str(
        refused
    )
    assert active_slug() == "primary" and not GameDay.objects.exists()


def test_gameday_exits_non_zero_when_nothing_failed_over(primary, secondary, fake_primary):
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("gameday", "--drive", "--interval", "0", "--timeout", "0.001", stdout=out)
    assert failed.value.returncode == 1
    assert "Game day failed: no failover within 0.001 s: Primary was not even detected as down" in str(failed.value)
    text = out.getvalue()
    assert "Nothing moved: traffic stayed on Primary, there is nothing to fail back." in text
    assert "by hand" not in text
    game = GameDay.objects.get()
    assert not game.succeeded and game.notes.startswith("no failover within 0.001 s")
    assert active_slug() == "primary" and fake_primary.mode == "ok"


@pytest.mark.django_db(transaction=True)
def test_gameday_fails_when_the_rto_misses_the_target(primary, secondary, settings):
    settings.REGIONS_RTO_TARGET_SECONDS = 0
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("gameday", "--drive", "--interval", "0", stdout=out)
    assert failed.value.returncode == 1 and "missed the 0.0 s target" in str(failed.value)
    assert "MISSED; traffic moved to Secondary" in out.getvalue()
    assert "fail back by hand" in out.getvalue()  # traffic did move
    assert active_slug() == "secondary" and not GameDay.objects.get().succeeded


def test_gameday_uses_the_drill_switch_for_a_region_that_is_not_fake(primary, secondary):
    # A region without a control endpoint (a real deployment): the drill switch fails its probes.
    Region.objects.filter(pk=primary.pk).update(base_url="http://127.0.0.1:9")
    out = StringIO()
    call_command("gameday", "--drive", "--interval", "0", "--method", "drill", stdout=out)
    game = GameDay.objects.get()
    assert game.method == "drill-switch" and game.succeeded
    assert Region.objects.get(pk=primary.pk).drill_fail is False


def test_the_probe_schedule_follows_the_policy_interval(policy):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(name="regions: probe all regions")
    assert (task.interval.every, task.interval.period) == (30, "seconds")
    policy.probe_interval_seconds = 5
    policy.save()
    policy_sync_schedule(policy=policy)
    task.refresh_from_db()
    assert task.interval.every == 5
