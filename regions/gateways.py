"""Every HTTP call the regions app makes to a region goes through here.

Probes run concurrently on one asyncio loop with ``httpx``; each has its own deadline
(``asyncio.wait_for``), which also covers a server that accepts the connection and then
never answers (httpx's own timeouts are per read, not per request). A probe never
raises: a failure is a result. ``RegionGatewayError`` is the one error type for the
calls that are expected to succeed (the fake-region control endpoint), and says
whether trying again can help.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per probe is noise


class RegionGatewayError(Exception):
    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class ProbeTarget:
    key: int | str
    url: str
    timeout: float
    expected_status: str = "2xx"
    body_contains: str = ""
    forced_error: str = ""  # the game-day drill switch: fail without calling


@dataclass(frozen=True)
class ProbeResult:
    key: int | str
    ok: bool
    status_code: int | None
    latency_ms: float | None
    error: str


def status_expected(code: int, spec: str) -> bool:
    """``spec`` is a comma-separated list of codes (``200``) or classes (``2xx``)."""
    for part in (p.strip().lower() for p in spec.split(",")):
        if not part:
            continue
        if part.endswith("xx") and part[:-2].isdigit():
            if code // 100 == int(part[:-2]):
                return True
        elif part.isdigit() and code == int(part):
            return True
    return False


async def _probe(client: httpx.AsyncClient, target: ProbeTarget) -> ProbeResult:
    if target.forced_error:
        return ProbeResult(target.key, False, None, None, target.forced_error)
    started = time.perf_counter()
    try:
        response = await asyncio.wait_for(client.get(target.url), timeout=target.timeout)
    except (TimeoutError, httpx.TimeoutException):
        return ProbeResult(target.key, False, None, None, f"timeout after {target.timeout:g}s")
    except httpx.HTTPError as exc:
        return ProbeResult(target.key, False, None, None, f"{type(exc).__name__}: {exc}"[:300])
    latency = (time.perf_counter() - started) * 1000
    code = response.status_code
    if not status_expected(code, target.expected_status):
        return ProbeResult(target.key, False, code, latency, f"unexpected status {code}")
    if target.body_contains and target.body_contains not in response.text:
        return ProbeResult(target.key, False, code, latency, f"body lacks {target.body_contains!r}"[:300])
    return ProbeResult(target.key, True, code, latency, "")


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: building one loads the CA bundle (about 20 ms), which
    a new client per cycle would otherwise pay every cycle."""
    return httpx.create_ssl_context()


async def _probe_all(targets: Sequence[ProbeTarget]) -> list[ProbeResult]:
    limits = httpx.Limits(max_connections=max(len(targets), 1), max_keepalive_connections=0)
    async with httpx.AsyncClient(
        limits=limits, follow_redirects=False, headers={"User-Agent": "transbot-region-probe"}, verify=_tls()
    ) as client:
        return list(await asyncio.gather(*(_probe(client, t) for t in targets)))


def probe_many(targets: Sequence[ProbeTarget]) -> list[ProbeResult]:
    """Probe every target at once; returns one result per target, in order. The whole
    call takes about as long as the slowest probe (bounded by its timeout)."""
    if not targets:
        return []
    return asyncio.run(_probe_all(targets))


def control_fake_region(base_url: str, action: str, *, timeout: float = 2.0) -> None:
    """Tell a ``fake_region`` server to fail, hang or recover (game days, demos)."""
    url = base_url.rstrip("/") + f"/_control/{action}"
    try:
        response = httpx.post(url, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise RegionGatewayError(f"{url}: timeout", retryable=True) from exc
    except httpx.HTTPError as exc:
        raise RegionGatewayError(f"{url}: {exc}", retryable=True) from exc
    if response.status_code != 200:
        raise RegionGatewayError(
            f"{url}: HTTP {response.status_code} (not a fake region?)", retryable=response.status_code >= 500
        )
