"""Ingestion through outages: Redis down (PostgreSQL is the source of truth, so every event
is taken and counted once), PostgreSQL down (503 JSON, nothing half-written, back by itself
when PostgreSQL is)."""

from __future__ import annotations

from tests.chaos.stack import Stack, eventually

EVENTS = "/api/v1/usage/events/"
BATCH = 5


def _batch(prefix: str, i: int) -> dict:
    return {"events": [{"feature": "quotes", "idempotency_key": f"{prefix}{i}-{j}"} for j in range(BATCH)]}


def _stored(stack: Stack, prefix: str) -> dict[str, int]:
    rows = stack.sql(
        "SELECT split_part(idempotency_key, '-', 1), count(*) FROM usage_usageevent "
        "WHERE idempotency_key LIKE %s GROUP BY 1",
        [f"{prefix}%"],
    )
    return dict(rows)


def _counted(stack: Stack) -> int:
    return stack.value("SELECT coalesce(sum(used), 0) FROM usage_usagecounter") or 0


def test_redis_down_during_ingest_no_5xx_and_every_acknowledged_event_counted_once(stack: Stack):
    headers = {"Authorization": f"Api-Key {stack.api_key}"}
    before = _counted(stack)
    answers: dict[int, int] = {}
    with stack.http() as http:
        for i in range(60):
            if i == 20:
                stack.redis.stop()
            if i == 40:
                stack.redis.start()
            answers[i] = http.post(EVENTS, json=_batch("r", i), headers=headers).status_code
        again = http.post(EVENTS, json=_batch("r", 5), headers=headers)  # a client's retry: no double count

    assert set(answers.values()) == {200}, answers
    assert again.status_code == 200 and again.json()["duplicates"] == BATCH
    stored = _stored(stack, "r")
    assert len(stored) == 60 and set(stored.values()) == {BATCH}
    assert _counted(stack) - before == 60 * BATCH
    web = stack.processes["web"].output()
    assert "usage ingest throttle: Redis unreachable, counting per process: degraded" in web


def test_postgres_down_during_ingest_503_json_nothing_half_written_and_back_without_a_restart(stack: Stack):
    headers = {"Authorization": f"Api-Key {stack.api_key}"}
    web_pid = stack.processes["web"].popen.pid
    before = _counted(stack)
    answers: dict[int, tuple[int, dict, str | None]] = {}
    with stack.http() as http:
        for i in range(45):
            if i == 15:
                stack.postgres.stop()
            if i == 30:
                health = http.get("/healthz")  # the other region's prober is told which part failed
                stack.postgres.start()
            response = http.post(EVENTS, json=_batch("p", i), headers=headers)
            answers[i] = (response.status_code, response.json(), response.headers.get("Retry-After"))
        assert health.status_code == 503
        assert health.json()["checks"]["database"] != "ok" and health.json()["checks"]["cache"] == "ok"
        assert http.get("/healthz").status_code == 200
        down = [i for i, (status, _, _) in answers.items() if status != 200]
        assert set(down) == set(range(15, 30)), {i: a[0] for i, a in answers.items()}
        for i in down:
            status, body, retry_after = answers[i]
            assert status == 503 and retry_after == "10"
            assert body["error"]["code"] == "database_unavailable" and body["error"]["status"] == 503
        # Nothing half-written: a batch is all there or not at all; every 200 is all there.
        stored = _stored(stack, "p")
        assert set(stored.values()) <= {BATCH}
        assert set(stored) == {f"p{i}" for i in answers if i not in down}
        # The client sends the refused batches again: all taken, each event once.
        retried = [http.post(EVENTS, json=_batch("p", i), headers=headers).status_code for i in down]

    assert set(retried) == {200}
    assert len(_stored(stack, "p")) == 45
    assert _counted(stack) - before == 45 * BATCH
    assert stack.processes["web"].popen.pid == web_pid  # recovered without a restart
    eventually(lambda: stack.processes["worker"].alive and stack.processes["beat"].alive, timeout=5)
