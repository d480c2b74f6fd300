"""notify(): stored in the caller's transaction, sent once, reads well."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.db import transaction

from ops.delivery import notifications_deliver_due
from ops.models import ChannelStatus, Notification, NotificationStatus, OpsTask
from ops.services import notify, ops_task_open

NOON = datetime(2026, 3, 4, 12, 0, 5, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_an_alert_requested_in_a_transaction_that_rolls_back_is_never_sent(
    fake_slack, ops_emails, mailoutbox
):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            notify(kind="region.failover", title="Failed over to secondary", text="(rolled back)")
            raise RuntimeError("the failover itself failed")
    with transaction.atomic():
        notify(kind="region.failover", title="Failed over to standby", text="committed")

    notifications_deliver_due()

    assert [m["text"].splitlines()[0] for m in fake_slack.messages] == ["[Info] Failed over to standby"]
    assert [m.subject for m in mailoutbox] == ["[Trans Bot Info] Failed over to standby"]
    assert not Notification.objects.filter(title="Failed over to secondary").exists()


@pytest.mark.django_db
def test_the_message_says_what_where_when_what_to_do_and_links_to_admin(
    fake_slack, ops_emails, mailoutbox, acme
):
    link = f"http://127.0.0.1:8000/admin/accounts/company/{acme.pk}/change/"
    with time_machine.travel(NOON, tick=False):
        notify(
            kind="usage.breach",
            title="Acme Freight is over its quotes limit",
            text="Acme Freight used 1,240 of 1,000 quotes this period.\n"
            "What to do: call the account owner and offer the Pro plan; overage is billed.",
            severity="warning",
            link=link,
            company=acme,
            fields={"Feature": "quotes", "Used": "1,240 / 1,000 (124 %)"},
        )
        assert notifications_deliver_due() == {"sent": 1}

    message = fake_slack.messages[0]
    fallback = message["text"]
    for expected in (
        "[Warning] Acme Freight is over its quotes limit",
        "used 1,240 of 1,000 quotes",
        "What to do: call the account owner",
        "Company: Acme Freight",
        "When: 2026-03-04 12:00:05 UTC",
        f"Open: {link}",
    ):
        assert expected in fallback
    header = message["blocks"][0]
    assert header["type"] == "header" and "Acme Freight is over its quotes limit" in header["text"]["text"]
    button = next(b for b in message["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["url"] == link and button["text"]["text"] == "Open in admin"
    field_texts = [f["text"] for b in message["blocks"] for f in b.get("fields", [])]
    assert "*Feature*\nquotes" in field_texts
    assert "*When*\n2026-03-04 12:00:05 UTC" in field_texts
    assert "*Company*\nAcme Freight" in field_texts

    (mail,) = mailoutbox
    assert mail.subject == "[Trans Bot Warning] Acme Freight is over its quotes limit"
    assert mail.to == ops_emails
    for expected in (
        "What to do: call the account owner",
        "When: 2026-03-04 12:00:05 UTC",
        "Company: Acme Freight",
        "Used: 1,240 / 1,000 (124 %)",
        f"Open in admin: {link}",
    ):
        assert expected in mail.body


@pytest.mark.django_db
def test_the_same_dedup_key_ten_times_sends_one_message_and_opens_one_task(
    fake_slack, ops_emails, mailoutbox, acme
):
    key = f"usage.breach:{acme.pk}:quotes:2026-03"
    notifications, tasks = [], []
    for _ in range(10):
        notifications.append(
            notify(
                kind="usage.breach", title="Acme Freight is over its quotes limit", text="...", dedup_key=key
            )
        )
        tasks.append(
            ops_task_open(kind="usage.breach", title="Call Acme Freight", company=acme, dedup_key=key)
        )

    notifications_deliver_due()

    assert notifications[0] is not None and notifications[1:] == [None] * 9
    assert [created for _, created in tasks] == [True] + [False] * 9
    assert {task.pk for task, _ in tasks} == {tasks[0][0].pk}
    assert len(fake_slack.messages) == 1
    assert len(mailoutbox) == 1
    assert Notification.objects.count() == 1
    assert OpsTask.objects.filter(dedup_key=key).count() == 1


@pytest.mark.django_db
def test_with_no_webhook_slack_is_off_and_email_still_goes(settings, ops_emails, mailoutbox):
    settings.SLACK_WEBHOOK_URL = ""
    settings.SLACK_KIND_WEBHOOKS = {}
    notification = notify(kind="region.failover", title="Failed over to standby", text="...")

    notifications_deliver_due()

    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT
    assert notification.slack_status == ChannelStatus.OFF
    assert notification.email_status == ChannelStatus.SENT
    assert len(mailoutbox) == 1


@pytest.mark.django_db
def test_a_kind_can_go_to_its_own_webhook(settings, ops_emails):
    from tests.ops.fake_slack import FakeSlack

    with FakeSlack() as general, FakeSlack() as billing_channel:
        settings.SLACK_WEBHOOK_URL = general.url
        settings.SLACK_KIND_WEBHOOKS = {"billing": billing_channel.url}
        notify(kind="billing.payment_failed", title="Card declined for Acme", text="...", email_to=[])
        notify(kind="region.failover", title="Failed over", text="...", email_to=[])
        notifications_deliver_due()

    assert [m["text"].splitlines()[0] for m in billing_channel.messages] == ["[Info] Card declined for Acme"]
    assert [m["text"].splitlines()[0] for m in general.messages] == ["[Info] Failed over"]


@pytest.mark.django_db
def test_email_to_an_empty_list_sends_no_email(fake_slack, ops_emails, mailoutbox):
    notify(kind="usage.monitor_run", title="Nightly monitor finished", text="...", email_to=[])
    notifications_deliver_due()
    assert len(fake_slack.messages) == 1
    assert mailoutbox == []


@pytest.mark.django_db
def test_an_unknown_severity_is_refused():
    with pytest.raises(ValueError, match="severity"):
        notify(kind="x.y", title="t", text="", severity="urgent")
    assert Notification.objects.count() == 0
