"""Alert levels crossed by ingestion itself: the request whose counter update passes a
level records the crossing in its transaction and queues the owners' e-mail and, for a
breach, the ops alert and task, with one audit record; at, below and above each level."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditLog
from billing.plans.models import LimitMode, TierLimit
from ops.models import Notification, OpsTask
from usage.models import ThresholdCrossing, UsageCounter
from usage.monitor import usage_monitor_run
from usage.services import LimitReached, usage_record_events
from usage.validation import validate_batch

NOW = datetime(2026, 11, 16, 12, tzinfo=UTC)
_keys = iter(range(10**9))


def ingest(company, *quantities: int, feature: str = "quotes"):
    """One batch through the service as the API calls it (validated, then recorded)."""
    from billing.plans.cache import feature_ids

    data = {
        "events": [
            {"feature": feature, "quantity": q, "idempotency_key": f"k{next(_keys)}", "occurred_at": NOW.isoformat()}
            for q in quantities
        ]
    }
    events = validate_batch(data, features=feature_ids(), anchor_day=company.billing_anchor_day, now=NOW)
    return usage_record_events(company=company, events=events, now=NOW)


def crossings(company):
    return sorted(
        ThresholdCrossing.objects.filter(company=company).values_list("level", "notified", "source", "used")
    )


def owner_mail(company):
    return list(
        Notification.objects.filter(company=company, email_to=[company.owner.email]).values_list("kind", "title")
    )


def ops_alerts(company):
    return list(Notification.objects.filter(company=company, dedup_key__endswith=":ops").values_list("kind", flat=True))


def threshold_audits(company):
    return list(
        AuditLog.objects.filter(company_id=company.pk, action__startswith="usage.threshold.").values_list(
            "action", "actor_label"
        )
    )


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.mark.django_db
class TestLevels:
    """Starter quotes: 1,000 included; default levels 80 % and 100 %."""

    def test_just_below_a_level_nothing_is_crossed(self, acme):
        ingest(acme, 799)
        assert crossings(acme) == []
        assert owner_mail(acme) == []

    def test_at_a_level_the_request_records_and_announces_it(self, acme):
        ingest(acme, 700)
        ingest(acme, 100)
        assert crossings(acme) == [(80, True, "ingest", 800)]
        assert owner_mail(acme) == [("usage.warning", "You have used 80 % of your quotes")]
        assert threshold_audits(acme) == [("usage.threshold.warning", "usage-ingest")]
        assert not OpsTask.objects.exists()  # a warning is the owners' business, not ops'
        assert ops_alerts(acme) == []

    def test_just_above_a_level_it_is_announced_once(self, acme):
        ingest(acme, 799)
        ingest(acme, 2)
        ingest(acme, 5)
        assert crossings(acme) == [(80, True, "ingest", 801)]
        assert len(owner_mail(acme)) == 1

    def test_a_breach_also_opens_an_ops_task_and_alert(self, acme):
        ingest(acme, 900)
        ingest(acme, 101)
        assert crossings(acme) == [(80, True, "ingest", 900), (100, True, "ingest", 1001)]
        task = OpsTask.objects.get(company=acme)
        assert (task.kind, task.severity) == ("usage.breach", "high")
        assert task.target == ThresholdCrossing.objects.get(company=acme, level=100)
        assert ops_alerts(acme) == ["usage.breach"]
        assert ("usage.breach", "You have exceeded your quotes limit") in owner_mail(acme)

    def test_reaching_the_limit_exactly_is_the_100_percent_level(self, acme):
        ingest(acme, 1000)
        assert [(level, notified) for level, notified, _, _ in crossings(acme)] == [(80, False), (100, True)]
        assert owner_mail(acme) == [("usage.breach", "You have used all your included quotes")]

    def test_levels_passed_at_once_are_announced_as_the_highest_only(self, acme):
        ingest(acme, 1500)
        assert [(level, notified) for level, notified, _, _ in crossings(acme)] == [(80, False), (100, True)]
        assert len(owner_mail(acme)) == 1
        assert OpsTask.objects.filter(company=acme).count() == 1
        (audit,) = AuditLog.objects.filter(company_id=acme.pk, action__startswith="usage.threshold.")
        assert audit.details["level"] == 100 and audit.details["also_reached"] == [80]

    def test_a_tiers_own_levels_are_used(self, acme, catalogue):
        catalogue["starter"].alert_levels = [50, 80, 100, 150]
        catalogue["starter"].save()
        ingest(acme, 500)
        ingest(acme, 1000)
        assert [(lv, n) for lv, n, _, _ in crossings(acme)] == [(50, True), (80, False), (100, False), (150, True)]
        assert sorted(k for k, _ in owner_mail(acme)) == ["usage.breach", "usage.warning"]

    def test_the_owners_levels_add_to_the_tiers(self, acme):
        acme.alert_levels = [25]
        acme.save()
        ingest(acme, 250)
        assert crossings(acme) == [(25, True, "ingest", 250)]

    def test_a_replayed_batch_crosses_nothing_again(self, acme):
        from billing.plans.cache import feature_ids

        event = {"feature": "quotes", "quantity": 900, "idempotency_key": "same", "occurred_at": NOW.isoformat()}
        data = {"events": [event]}
        for _ in range(2):
            events = validate_batch(data, features=feature_ids(), anchor_day=acme.billing_anchor_day, now=NOW)
            usage_record_events(company=acme, events=events, now=NOW)
        assert crossings(acme) == [(80, True, "ingest", 900)]
        assert len(owner_mail(acme)) == 1

    def test_a_hard_limit_reached_is_a_breach_and_a_refused_batch_records_nothing(self, acme):
        TierLimit.objects.filter(tier__code="starter", feature__code="bulk_jobs").update(mode=LimitMode.HARD)
        ingest(acme, 7, feature="bulk_jobs")
        with pytest.raises(LimitReached):
            ingest(acme, 4, feature="bulk_jobs")
        assert crossings(acme) == []
        ingest(acme, 3, feature="bulk_jobs")
        assert crossings(acme) == [(80, False, "ingest", 10), (100, True, "ingest", 10)]
        mail = Notification.objects.get(company=acme, email_to=[acme.owner.email])
        assert "Nothing beyond the limit is accepted" in mail.text

    def test_an_unlimited_feature_has_no_levels(self, make_company):
        big = make_company("enterprise")
        ingest(big, 10**6, feature="directory_invites")
        assert crossings(big) == []


@pytest.mark.django_db
class TestCost:
    def test_a_one_event_batch_that_crosses_nothing_is_one_statement(self, acme):
        ingest(acme, 1)  # warms the hot-path caches
        with CaptureQueriesContext(connection) as queries:
            ingest(acme, 1)
        # (the savepoints are the test's own transaction around the service's atomic block)
        statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
        assert len(statements) == 1, statements
        assert statements[0].lstrip().startswith("WITH ins AS")

    def test_a_crossing_adds_its_statements_only_when_it_happens(self, acme):
        ingest(acme, 1)
        with CaptureQueriesContext(connection) as quiet:
            ingest(acme, 1)
        with CaptureQueriesContext(connection) as crossing:
            ingest(acme, 900)
        assert len(crossing.captured_queries) > len(quiet.captured_queries)
        assert crossings(acme)[0][0] == 80


@pytest.mark.django_db(transaction=True)
class TestTheOneStatementPath:
    """Outside a transaction (as a request runs) a one-event batch is one autocommit
    statement; a crossing undoes it and the batch is done again in a transaction."""

    def test_an_event_that_crosses_a_level_is_stored_and_counted_once_with_its_crossing(self, acme):
        ingest(acme, 799)
        assert crossings(acme) == []
        ingest(acme, 1)  # 800 of 1,000: the guard undoes the statement, the transaction redoes it

        assert UsageCounter.objects.get(company=acme, feature__code="quotes").used == 800
        assert acme.usage_events.count() == 2
        assert crossings(acme) == [(80, True, "ingest", 800)]
        assert len(owner_mail(acme)) == 1

    def test_a_replay_is_a_duplicate_and_a_changed_replay_a_conflict(self, acme):
        from billing.plans.cache import feature_ids
        from core.errors import Conflict

        def send(quantity: int):
            event = {"feature": "quotes", "quantity": quantity, "idempotency_key": "once",
                     "occurred_at": NOW.isoformat()}
            events = validate_batch({"events": [event]}, features=feature_ids(), anchor_day=acme.billing_anchor_day,
                                    now=NOW)
            return usage_record_events(company=acme, events=events, now=NOW)

        assert send(5).accepted == 1
        again = send(5)
        with pytest.raises(Conflict) as conflict:
            send(6)

        assert (again.accepted, again.duplicates, again.duplicate_keys) == (0, 1, ["once"])
        assert conflict.value.field == "events.0.idempotency_key"
        assert UsageCounter.objects.get(company=acme, feature__code="quotes").used == 5


@pytest.mark.django_db
@pytest.mark.parametrize("included", [1, 3, 7, 10, 99, 100, 101, 1000, 1001])
def test_the_statements_crossing_test_says_what_levels_between_says(included):
    """The one statement's ``RETURNING`` raises exactly for the counter moves
    ``levels_between`` finds a level in: every before/after pair up to twice the quantity,
    levels 1–150 %, evaluated by PostgreSQL."""
    from usage.crossings import levels_between
    from usage.services import _CROSSES_SQL, _thresholds

    levels = (1, 25, 33, 50, 66, 80, 90, 99, 100, 101, 120, 150)
    literal = "{" + ",".join(map(str, _thresholds(included=included, levels=levels))) + "}"
    top = 2 * included + 3
    crosses = _CROSSES_SQL.replace("%(quantity)s", "quantity")  # the event's quantity: a column here
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT used - quantity, used, {crosses} FROM "  # noqa: S608 (the module's own SQL)
            "(SELECT a AS used, a - b AS quantity FROM generate_series(0, %(top)s) AS b, "
            "generate_series(0, %(top)s) AS a WHERE a > b) AS moves",
            {"thresholds": literal, "top": top},
        )
        rows = cursor.fetchall()

    assert len(rows) == top * (top + 1) // 2
    for before, after, passed in rows:
        assert passed == bool(levels_between(before=before, after=after, included=included, levels=levels)), (
            before, after)


@pytest.mark.django_db
class TestTheMonitorAsSafetyNet:
    def test_after_ingest_it_finds_nothing_missed(self, acme):
        ingest(acme, 1200)
        run = usage_monitor_run()
        assert run.missed_by_ingest == 0 and run.new_tasks == 0
        assert run.report["missed_by_ingest"] == 0

    def test_it_catches_and_counts_crossings_made_around_ingestion(self, acme):
        ingest(acme, 10)
        UsageCounter.objects.filter(company=acme, feature__code="quotes").update(used=1200)  # bypassing ingest
        run = usage_monitor_run()
        assert run.missed_by_ingest == 2
        assert crossings(acme) == [(80, False, "monitor", 1200), (100, True, "monitor", 1200)]
        assert OpsTask.objects.filter(company=acme, kind="usage.breach").count() == 1
        assert usage_monitor_run().missed_by_ingest == 0
