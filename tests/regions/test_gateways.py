"""Probe outcomes against real loopback servers: what counts as a failure."""

from __future__ import annotations

import pytest

from regions.fake import FakeRegionServer
from regions.gateways import ProbeTarget, RegionGatewayError, control_fake_region, probe_many, status_expected


def target(url, **kw):
    return ProbeTarget(key=1, url=url, timeout=kw.pop("timeout", 0.5), **kw)


def test_ok_fail_hang_refused_and_body_text(fake_primary):
    with FakeRegionServer(name="x") as failing, FakeRegionServer(name="y") as hanging:
        failing.set_mode("fail")
        hanging.set_mode("hang")
        ok, bad, hung, refused, no_text, text = probe_many(
            [
                target(f"{fake_primary.base_url}/healthz"),
                target(f"{failing.base_url}/healthz"),
                target(f"{hanging.base_url}/healthz", timeout=0.3),
                target("http://127.0.0.1:9/healthz"),
                target(f"{fake_primary.base_url}/healthz", body_contains="kaput"),
                target(f"{fake_primary.base_url}/healthz", body_contains='"status": "ok"'),
            ]
        )
    assert ok.ok and ok.status_code == 200 and ok.latency_ms is not None
    assert not bad.ok and bad.status_code == 503 and bad.error == "unexpected status 503"
    assert not hung.ok and hung.error == "timeout after 0.3s"
    assert not refused.ok and "ConnectError" in refused.error
    assert not no_text.ok and "kaput" in no_text.error
    assert text.ok


def test_expected_status_spec():
    assert status_expected(204, "2xx") and not status_expected(301, "2xx")
    assert status_expected(301, "200, 301") and not status_expected(302, "200,301")


def test_control_of_something_that_is_not_a_fake_region_is_a_retryable_error():
    with pytest.raises(RegionGatewayError) as info:
        control_fake_region("http://127.0.0.1:9", "fail", timeout=0.5)
    assert info.value.retryable
