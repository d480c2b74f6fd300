from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_it_sends_a_test_alert_through_slack_and_email_and_says_so(fake_slack, ops_emails, mailoutbox):
    out = StringIO()
    call_command("notify_test", stdout=out)

    assert len(fake_slack.messages) == 1
    assert "Test alert from the Trans Bot back office" in fake_slack.messages[0]["text"]
    assert "If you can read this, this channel works" in fake_slack.messages[0]["text"]
    assert mailoutbox[0].to == ops_emails
    printed = out.getvalue()
    assert "Slack:  sent to http://127.0.0.1:" in printed
    assert "E-mail: sent to ops@transbot.local, oncall@transbot.local" in printed
    assert ": Sent" in printed


@pytest.mark.django_db
def test_it_says_slack_is_off_when_no_webhook_is_set(settings, ops_emails, mailoutbox):
    settings.SLACK_WEBHOOK_URL = ""
    out = StringIO()
    call_command("notify_test", "--email", "me@transbot.local", stdout=out)

    assert "Slack:  off (SLACK_WEBHOOK_URL is empty)" in out.getvalue()
    assert mailoutbox[0].to == ["me@transbot.local"]


@pytest.mark.django_db
def test_it_reports_a_failing_slack(fake_slack, ops_emails):
    fake_slack.fail_next(1, status=403, body="invalid_token")
    out = StringIO()
    call_command("notify_test", stdout=out)
    assert "Slack:  FAILED: slack: Slack answered HTTP 403: invalid_token" in out.getvalue()
    assert ": Failed" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_it_reports_sent_even_when_a_running_worker_delivers_it_first(fake_slack, ops_emails):
    """notify() hands the alert to the worker on commit; whoever delivers it, the command
    must report what happened, and the message goes out once."""
    from celery.contrib.testing.worker import start_worker

    from trans_bot.celery import app

    app.control.purge()
    printed = []
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        for _ in range(5):
            out = StringIO()
            call_command("notify_test", stdout=out)
            printed.append(out.getvalue())
        assert fake_slack.wait_for(5, timeout=30)
    assert all("Slack:  sent to http://127.0.0.1:" in p and ": Sent" in p for p in printed), printed
    assert len(fake_slack.messages) == 5
