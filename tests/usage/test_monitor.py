"""The nightly usage monitor, the safety net behind ingestion's crossings: acts once per
company, feature, period and level, at the levels of the tier and of the owners."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.test import override_settings

from audit.models import AuditLog
from billing.plans.models import Feature
from ops.models import Notification, OpsTask
from usage.models import MonitorRun, ThresholdCrossing, UsageCounter
from usage.monitor import usage_monitor_run

NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
NIGHT = datetime(2026, 11, 16, 2, tzinfo=UTC)


def use(company, feature: str, used: int, start=NOV, end=DEC):
    UsageCounter.objects.update_or_create(
        company=company,
        feature=Feature.objects.get(code=feature),
        period_start=start,
        defaults={"period_end": end, "used": used, "updated_at": start},
    )


@pytest.fixture
def tenants(make_company):
    """Starter quotes limit 1,000: one at 85 %, one at 130 %, one at 50 %; an Enterprise
    company far into its unlimited directory invites."""
    near = make_company("starter", name="Near Ltd", owner_email="near@example.com")
    over = make_company("starter", name="Over Inc", owner_email="over@example.com")
    calm = make_company("starter", name="Calm Co")
    big = make_company("enterprise", name="Big Corp")
    use(near, "quotes", 850)
    use(over, "quotes", 1300)
    use(calm, "quotes", 500)
    use(big, "directory_invites", 10**6)
    return {"near": near, "over": over, "calm": calm, "big": big}


def run(**kwargs) -> MonitorRun:
    with time_machine.travel(NIGHT, tick=False):
        return usage_monitor_run(**kwargs)


def owner_emails():
    return sorted(
        (n.kind, tuple(n.email_to))
        for n in Notification.objects.exclude(kind="usage.monitor_run").exclude(dedup_key__endswith=":ops")
    )


@pytest.mark.django_db
class TestARun:
    def test_it_emails_the_owners_for_each_new_crossing_and_opens_a_task_and_alert_for_breaches(self, tenants):
        result = run()
        assert result.status == "succeeded"
        assert (result.new_warnings, result.new_breaches, result.new_tasks) == (1, 1, 1)
        assert (result.warnings, result.breaches) == (1, 1)
        assert result.companies_scanned == 4
        tasks = {(t.kind, t.company.name) for t in OpsTask.objects.all()}
        assert tasks == {("usage.breach", "Over Inc")}
        assert OpsTask.objects.get(kind="usage.breach").severity == "high"
        assert owner_emails() == [
            ("usage.breach", ("over@example.com",)),
            ("usage.warning", ("near@example.com",)),
        ]
        breach = Notification.objects.get(kind="usage.breach", email_to=["over@example.com"])
        assert "exceeded" in breach.title and "1,300 of 1,000" in breach.text
        ops_alert = Notification.objects.get(kind="usage.breach", dedup_key__endswith=":ops")
        assert ops_alert.slack_status == "pending" and "Over Inc exceeded" in ops_alert.title
        assert set(AuditLog.objects.filter(action__startswith="usage.threshold").values_list(
            "action", "company_name")) == {("usage.threshold.warning", "Near Ltd"),
                                           ("usage.threshold.exceeded", "Over Inc")}

    def test_it_posts_one_slack_summary_with_a_link_to_the_run(self, tenants):
        result = run()
        summary = Notification.objects.get(kind="usage.monitor_run")
        assert summary.dedup_key == f"usage.monitor_run:{result.pk}"
        assert summary.link.endswith(f"/admin/usage/monitorrun/{result.pk}/change/")
        assert summary.email_to == []
        assert "1 new breaches, 1 new warnings" in summary.title
        assert "Over Inc" in summary.text.split("Worst offenders:")[1].splitlines()[1]

    def test_the_run_report_names_the_worst_offenders(self, tenants):
        report = run().report
        assert [(w["company"], w["level"], w["percent"]) for w in report["worst_offenders"]] == [
            ("Over Inc", "exceeded", 130.0),
            ("Near Ltd", "warning", 85.0),
        ]

    def test_a_second_run_opens_and_sends_nothing_new(self, tenants):
        run()
        tasks, emails, crossings = OpsTask.objects.count(), owner_emails(), ThresholdCrossing.objects.count()
        again = run()
        assert (again.new_warnings, again.new_breaches, again.new_tasks) == (0, 0, 0)
        assert (again.warnings, again.breaches) == (1, 1)
        assert OpsTask.objects.count() == tasks
        assert owner_emails() == emails
        assert ThresholdCrossing.objects.count() == crossings
        assert Notification.objects.filter(kind="usage.monitor_run").count() == 2

    def test_going_from_warning_to_over_alerts_again_once(self, tenants):
        run()
        use(tenants["near"], "quotes", 1001)
        second = run()
        assert (second.new_warnings, second.new_breaches, second.new_tasks) == (0, 1, 1)
        assert OpsTask.objects.filter(company=tenants["near"]).count() == 1
        assert owner_emails().count(("usage.breach", ("near@example.com",))) == 1
        run()
        assert OpsTask.objects.filter(company=tenants["near"]).count() == 1

    def test_jumping_straight_over_the_limit_alerts_once_for_the_limit(self, tenants):
        run()
        over = ThresholdCrossing.objects.filter(company=tenants["over"])
        assert {(c.level, c.notified) for c in over} == {(80, False), (100, True)}
        assert OpsTask.objects.filter(company=tenants["over"]).count() == 1

    def test_a_new_period_can_warn_again(self, tenants):
        run()
        use(tenants["near"], "quotes", 900, start=DEC, end=datetime(2027, 1, 1, tzinfo=UTC))
        with time_machine.travel(datetime(2026, 12, 20, 2, tzinfo=UTC), tick=False):
            december = usage_monitor_run()
        assert december.new_warnings == 1
        assert owner_emails().count(("usage.warning", ("near@example.com",))) == 2

    def test_a_crossing_in_a_periods_last_hours_is_caught_after_it_closed(self, make_company):
        late = make_company("starter", name="Late Night")
        use(late, "quotes", 1200, start=datetime(2026, 10, 1, tzinfo=UTC), end=NOV)
        with time_machine.travel(datetime(2026, 11, 1, 2, tzinfo=UTC), tick=False):
            result = usage_monitor_run()
        assert result.new_breaches == 1
        assert OpsTask.objects.get(company=late).kind == "usage.breach"

    def test_the_tiers_levels_are_the_ones_used(self, tenants, catalogue):
        catalogue["starter"].alert_levels = [90, 100, 125]
        catalogue["starter"].save()
        result = run()
        assert (result.new_warnings, result.new_breaches) == (0, 1)
        over = ThresholdCrossing.objects.filter(company=tenants["over"])
        assert {(c.level, c.notified) for c in over} == {(90, False), (100, False), (125, True)}
        assert not ThresholdCrossing.objects.filter(company=tenants["near"]).exists()

    def test_the_owners_own_levels_are_used_too(self, tenants):
        tenants["calm"].alert_levels = [40]
        tenants["calm"].save()
        run()
        crossing = ThresholdCrossing.objects.get(company=tenants["calm"])
        assert (crossing.level, crossing.source) == (40, "monitor")
        assert owner_emails().count(("usage.warning", (tenants["calm"].owner.email,))) == 1

    def test_it_reports_the_crossings_ingestion_had_missed(self, tenants):
        result = run()
        assert result.missed_by_ingest == 3  # Near 80 %, Over 80 % and 100 %
        assert result.report["missed_by_ingest"] == 3
        assert set(ThresholdCrossing.objects.values_list("source", flat=True)) == {"monitor"}
        assert run().missed_by_ingest == 0

    def test_a_canceled_company_is_not_alerted(self, tenants):
        tenants["over"].status = "canceled"
        tenants["over"].save()
        assert run().new_breaches == 0


@pytest.mark.django_db
class TestDryRun:
    def test_it_reports_everything_and_creates_and_sends_nothing(self, tenants):
        audit_before = AuditLog.objects.count()
        result = run(dry_run=True)
        assert result.dry_run is True
        assert result.status == "succeeded"
        assert (result.new_warnings, result.new_breaches, result.new_tasks) == (1, 1, 0)
        assert len(result.report["new_crossings"]) == 2
        assert not OpsTask.objects.exists()
        assert not Notification.objects.exists()
        assert not ThresholdCrossing.objects.exists()
        assert AuditLog.objects.count() == audit_before
        # and a real run afterwards still acts on everything
        assert run().new_tasks == 1


@pytest.mark.django_db(transaction=True)
class TestCrash:
    @override_settings(USAGE_MONITOR_BATCH=1)
    def test_a_run_that_dies_midway_is_finished_by_the_next_without_doubles(
        self, make_company, monkeypatch
    ):
        companies = [make_company("starter", name=f"Busy {i}") for i in range(5)]
        for company in companies:
            use(company, "quotes", 2000)
        import usage.crossings

        real = usage.crossings.ops_tasks_open_many
        calls = {"n": 0}

        def dies_on_the_third(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("worker killed")
            return real(*args, **kwargs)

        monkeypatch.setattr(usage.crossings, "ops_tasks_open_many", dies_on_the_third)
        with pytest.raises(RuntimeError):
            run()
        failed = MonitorRun.objects.get()
        assert failed.status == "failed"
        assert "worker killed" in failed.error
        breaches = OpsTask.objects.filter(kind="usage.breach")
        assert breaches.count() == 2  # two batches committed before the crash
        assert ThresholdCrossing.objects.filter(level=100).count() == 2
        # and ops are told the run failed (the README's usage.monitor_run task)
        failed_task = OpsTask.objects.get(kind="usage.monitor_run")
        assert failed_task.title == f"Usage monitor run #{failed.pk} failed"
        assert "worker killed" in failed_task.details and failed_task.target == failed

        monkeypatch.setattr(usage.crossings, "ops_tasks_open_many", real)
        second = run()
        assert second.new_tasks == 3
        assert breaches.count() == 5
        assert sorted(t.company.name for t in breaches) == [f"Busy {i}" for i in range(5)]
        assert Notification.objects.filter(kind="usage.breach").exclude(dedup_key__endswith=":ops").count() == 5
        assert AuditLog.objects.filter(action="usage.threshold.exceeded").count() == 5
        assert run().new_tasks == 0

    def test_a_run_left_running_by_a_dead_process_is_marked_abandoned(self, tenants):
        dead = MonitorRun.objects.create(started_at=NIGHT - timedelta(hours=3))
        run()
        dead.refresh_from_db()
        assert dead.status == "abandoned"
        task = OpsTask.objects.get(kind="usage.monitor_run")
        assert task.title == f"Usage monitor run #{dead.pk} died midway" and task.target == dead
        run()
        assert OpsTask.objects.filter(kind="usage.monitor_run").count() == 1

    def test_a_failed_nightly_run_opens_one_usage_monitor_run_task_and_a_dry_run_none(
        self, tenants, monkeypatch
    ):
        import usage.monitor

        def broken(**kwargs):
            raise RuntimeError("counter query timed out")

        monkeypatch.setattr(usage.monitor, "monitor_candidates", broken)
        with pytest.raises(RuntimeError):
            run(dry_run=True)
        assert not OpsTask.objects.filter(kind="usage.monitor_run").exists()
        with pytest.raises(RuntimeError):
            run()
        task = OpsTask.objects.get(kind="usage.monitor_run")
        assert task.severity == "high" and "counter query timed out" in task.details
        assert "run_usage_monitor --dry-run" in task.details


@pytest.mark.django_db
def test_the_command_runs_and_dry_runs(tenants):
    out = StringIO()
    with time_machine.travel(NIGHT, tick=False):
        call_command("run_usage_monitor", "--dry-run", stdout=out)
    assert "Dry run" in out.getvalue() and "new: 1 warnings, 1 breaches" in out.getvalue()
    assert "Over Inc" in out.getvalue()
    assert not OpsTask.objects.exists()
    out = StringIO()
    with time_machine.travel(NIGHT, tick=False):
        call_command("run_usage_monitor", stdout=out)
    assert "1 ops tasks; 3 crossing(s) ingestion had missed" in out.getvalue()
    assert OpsTask.objects.count() == 1


@pytest.mark.django_db
def test_the_monitor_is_scheduled_nightly_at_two_utc():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="usage.tasks.run_usage_monitor")
    assert task.enabled
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("0", "2", "UTC")


@pytest.mark.django_db
def test_a_batched_run_keeps_the_audit_chain_whole(make_company):
    from audit.selectors import audit_verify_chain

    for i in range(7):
        use(make_company("starter", name=f"Chained {i}"), "quotes", 1500 if i % 2 else 900)
    with override_settings(USAGE_MONITOR_BATCH=3):
        result = run()
    assert result.missed_by_ingest == 10  # 3 at 80 % and 100 %, 4 at 80 %
    assert AuditLog.objects.filter(action__startswith="usage.threshold.").count() == 7
    assert AuditLog.objects.filter(action="ops.task.open").count() == 3
    verified = audit_verify_chain()
    assert verified.ok and verified.checked == AuditLog.objects.count()
