"""The mail server accepts and never answers: every SMTP exchange ends at EMAIL_TIMEOUT,
so region probes keep running, and although claims are handed back while a worker hangs
(NOTIFY_SENDING_TIMEOUT shorter than EMAIL_TIMEOUT), Slack gets each alert exactly once."""

from __future__ import annotations

import time

from tests.chaos.stack import Stack, eventually


def _probes(stack: Stack) -> int:
    return stack.value("SELECT count(*) FROM regions_probe")


def test_a_hung_smtp_server_neither_stops_probes_nor_repeats_slack(stack: Stack, fakes):
    slack, smtp = fakes["slack"], fakes["smtp"]
    stack.restart("worker", EMAIL_URL=f"smtp://127.0.0.1:{smtp.port}", EMAIL_TIMEOUT="4", NOTIFY_SENDING_TIMEOUT="2")
    try:
        titles = [f"Mail server hung {i}" for i in range(3)]
        calls = "".join(f"print(notify(kind='chaos.smtp', title={t!r}, text='...').pk)\n" for t in titles)
        out = stack.shell("from ops.services import notify\n" + calls)
        pks = [int(line) for line in out.split()[-3:]]
        probes_before = _probes(stack)
        started = time.monotonic()

        # Slack went out for each; the mail keeps timing out and being retried, claims are handed back.
        eventually(
            lambda: all(slack.titles().count(f"[Info] {t}") >= 1 for t in titles), timeout=60, what="Slack posts"
        )
        eventually(lambda: smtp.connections >= 6, timeout=90, what="several SMTP attempts, each timing out")
        eventually(
            lambda: stack.value("SELECT min(attempts) FROM ops_notification WHERE id = ANY(%s)", [pks]) >= 2,
            timeout=60,
            what="every alert retried",
        )
        elapsed = time.monotonic() - started
        probes = _probes(stack) - probes_before
    finally:
        stack.restart("worker", EMAIL_URL="consolemail://", EMAIL_TIMEOUT="3", NOTIFY_SENDING_TIMEOUT="2")

    assert [slack.titles().count(f"[Info] {t}") for t in titles] == [1, 1, 1]
    # A probe cycle every 2 s (one probe per region) went on while the mail hung: at least
    # half the cycles that were due ran.
    cycles = probes / 2
    assert cycles >= elapsed / 2 / 2, (probes, elapsed)
    print(f"hung SMTP: {cycles:.0f} probe cycles in {elapsed:.0f} s, {smtp.connections} SMTP attempts")
    statuses = stack.sql("SELECT slack_status, email_status FROM ops_notification WHERE id = ANY(%s)", [pks])
    assert {row[0] for row in statuses} == {"sent"}
    assert {row[1] for row in statuses} <= {"pending", "sent"}
