"""Availability and the error budget come from one measure — the time the serving
region's probes cover — over the window the probes actually cover, and say which."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from regions.models import Probe, Region, RegionStatus
from regions.selectors import service_availability

NOW = dt.datetime(2025, 6, 30, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def serving(policy) -> Region:
    return Region.objects.create(
        name="Primary", slug="primary", base_url="https://eu.example.test", order=0,
        is_active=True, status=RegionStatus.HEALTHY,
    )


def probes(region, *, start, count, ok, step):
    Probe.objects.bulk_create(
        Probe(region=region, checked_at=start + i * step, ok=ok, was_active=True) for i in range(count)
    )


def test_three_hours_of_data_are_judged_as_three_hours(serving):
    # Probes every 30 s for the last 3 h; 10 minutes of them failed.
    step = dt.timedelta(seconds=30)
    start = NOW - dt.timedelta(hours=3)
    probes(serving, start=start, count=20 * 2, ok=True, step=step)
    probes(serving, start=start + dt.timedelta(minutes=20), count=10 * 2, ok=False, step=step)
    probes(serving, start=start + dt.timedelta(minutes=30), count=150 * 2, ok=True, step=step)

    a = service_availability(now=NOW)

    assert a.window_label == "over the last 3 h"
    assert a.window_minutes == 180.0
    assert a.downtime_minutes == 10.0
    assert a.availability == round(100 * 170 / 180, 4)  # 94.4444
    # 0.05 % of the 3 h covered, not of 30 days: the budget is spent, as availability says.
    assert a.error_budget_minutes == 0.09
    assert a.error_budget_remaining_minutes == -9.91
    assert a.meets_slo is False


def test_availability_is_weighted_by_time_not_by_probe_count(serving, policy):
    # One hour of good probes a minute apart, then ten minutes of failures probed every 10 s:
    # half the probes failed, but only 10 of the 70 minutes did.
    policy.probe_interval_seconds = 60
    policy.save()
    start = NOW - dt.timedelta(minutes=70)
    probes(serving, start=start, count=60, ok=True, step=dt.timedelta(minutes=1))
    probes(serving, start=start + dt.timedelta(minutes=60), count=60, ok=False, step=dt.timedelta(seconds=10))

    a = service_availability(now=NOW)

    assert a.window_label == "over the last 70 min"
    assert (a.window_minutes, a.downtime_minutes) == (70.0, 10.0)
    assert a.availability == round(100 * 60 / 70, 4)


def test_a_gap_in_probing_is_neither_up_nor_down(serving):
    # An hour of probes, two hours with no prober at all, then the last hour.
    step = dt.timedelta(seconds=30)
    probes(serving, start=NOW - dt.timedelta(hours=3), count=120, ok=True, step=step)
    probes(serving, start=NOW - dt.timedelta(hours=1), count=119, ok=False, step=step)

    a = service_availability(now=NOW)

    assert a.window_label == "over the last 3 h"
    # The hour's last probe speaks for two intervals at most, not for the two silent hours.
    assert a.window_minutes == 59.5 + 1 + 60
    assert a.downtime_minutes == 60.0
    assert a.error_budget_minutes == round(0.0005 * 120.5, 2)


def test_a_full_month_within_the_slo_keeps_budget_left(serving, policy):
    policy.probe_interval_seconds = 600
    policy.save()
    step = dt.timedelta(minutes=10)
    start = NOW - dt.timedelta(days=30) + dt.timedelta(seconds=1)
    probes(serving, start=start, count=30 * 144, ok=True, step=step)
    Probe.objects.filter(checked_at=start + 100 * step).update(ok=False)

    a = service_availability(now=NOW)

    assert a.window_label == "over the last 30 d"
    assert a.downtime_minutes == 10.0
    assert a.error_budget_minutes == 21.6  # 0.05 % of 30 days
    assert a.error_budget_remaining_minutes == 11.6
    assert a.meets_slo is True and a.availability >= 99.95


def test_no_probes_yet_claims_nothing(serving):
    a = service_availability(now=NOW)
    assert (a.availability, a.meets_slo, a.window_label) == (None, None, "no probes yet")


def test_the_status_api_says_what_window_it_covers(ops_client, serving):
    probes(serving, start=NOW - dt.timedelta(hours=3), count=360, ok=True, step=dt.timedelta(seconds=30))
    with time_machine.travel(NOW, tick=False):
        body = ops_client.get("/api/v1/regions/").json()
    assert body["availability"]["window_label"] == "over the last 3 h"
    assert body["availability"]["availability"] == 100.0
    assert body["availability"]["error_budget_minutes"] == 0.09
