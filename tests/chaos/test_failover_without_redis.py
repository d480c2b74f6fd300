"""A manual failover while Redis (cache and, here, broker) is down: answered 201 and
committed; once Redis is back the next probe cycle republishes routing, so every web
process follows, and the failover alert, queued while the broker was away, is delivered."""

from __future__ import annotations

from tests.chaos.stack import Stack, eventually

FAILOVER = "/api/v1/regions/failover/"


def _active(stack: Stack) -> str:
    return stack.value("SELECT slug FROM regions_region WHERE is_active")


def routes_to(http, headers: dict, region: str) -> bool:
    """Every web process (a dozen requests reach both gunicorn workers) names ``region`` active."""
    answers = [http.get("/api/v1/plans/", headers=headers) for _ in range(12)]
    return all(a.status_code == 200 and a.headers["X-Active-Region"] == region for a in answers)


def test_a_failover_with_redis_down_is_201_and_routing_catches_up(stack: Stack, fakes):
    slack = fakes["slack"]
    headers = {"Authorization": f"Token {stack.token}"}
    target = "secondary" if _active(stack) == "primary" else "primary"
    with stack.http() as http:
        stack.redis.stop()
        try:
            response = http.post(FAILOVER, json={"to": target, "reason": "chaos: Redis down"}, headers=headers)
            assert response.status_code == 201, response.text
            assert response.headers["X-Active-Region"] == target
            assert _active(stack) == target
        finally:
            stack.redis.start()

        eventually(lambda: routes_to(http, headers, target), timeout=30, what="routing republished by a probe cycle")

    def delivered() -> bool:
        rows = stack.sql(
            "SELECT title, status FROM ops_notification WHERE kind = 'region.failover' ORDER BY id DESC LIMIT 1"
        )
        return bool(rows) and rows[0][1] == "sent" and f"[Warning] {rows[0][0]}" in slack.titles()

    eventually(delivered, timeout=60, what=lambda: f"the failover alert delivered by the sweep: {slack.titles()[-3:]}")

    # Back to where it was, so the other scenarios write to this (primary) region.
    with stack.http() as http:
        back = "primary" if target == "secondary" else "secondary"
        assert http.post(FAILOVER, json={"to": back, "reason": "chaos: back"}, headers=headers).status_code == 201
        eventually(lambda: routes_to(http, headers, back), timeout=30, what="routing back")
