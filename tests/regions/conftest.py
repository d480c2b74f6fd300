"""Regions fixtures: two real HTTP servers on loopback stand in for the regions."""

from __future__ import annotations

import pytest

from regions.fake import FakeRegionServer
from regions.models import FailoverPolicy, Region, RegionStatus
from regions.selectors import policy_get
from regions.services import regions_probe_cycle


@pytest.fixture
def fake_primary():
    with FakeRegionServer(name="primary", hang_limit=10) as server:
        yield server


@pytest.fixture
def fake_secondary():
    with FakeRegionServer(name="secondary", hang_limit=10) as server:
        yield server


@pytest.fixture
def policy(db) -> FailoverPolicy:
    """Multi-region on, the issue's defaults: 3 to fail, 3 to recover, failback off, 10 min cooldown."""
    policy = policy_get()
    policy.multi_region_enabled = True
    policy.save()
    return policy


def _region(slug: str, server: FakeRegionServer, *, order: int, active: bool) -> Region:
    return Region.objects.create(
        name=slug.capitalize(),
        slug=slug,
        base_url=server.base_url,
        order=order,
        probe_timeout=0.5,
        is_active=active,
        status=RegionStatus.HEALTHY,
        consecutive_successes=5,
    )


@pytest.fixture
def primary(policy, fake_primary) -> Region:
    return _region("primary", fake_primary, order=0, active=True)


@pytest.fixture
def secondary(policy, fake_secondary) -> Region:
    return _region("secondary", fake_secondary, order=1, active=False)


@pytest.fixture
def cycle():
    """Run one probe cycle (real HTTP to the fake regions, then the gate)."""
    return regions_probe_cycle


def active_slug() -> str | None:
    region = Region.objects.filter(is_active=True).first()
    return region.slug if region else None
