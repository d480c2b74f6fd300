"""``manage.py notify_test``: send one test alert through every configured channel, now,
and print what each channel did, so ops can check the wiring after a config change."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from core.links import admin_changelist_url
from ops.delivery import notification_deliver, slack_webhook_for
from ops.models import ChannelStatus, Notification, NotificationStatus
from ops.services import notify


def _mask(url: str) -> str:
    """Show where a webhook points without printing its secret path."""
    head, _, tail = url.rpartition("/")
    return f"{head}/{tail[:4]}…" if tail else url


class Command(BaseCommand):
    help = "Send a test alert to Slack and the ops e-mail addresses and report what happened."

    def add_arguments(self, parser):
        parser.add_argument("--email", action="append", help="Send the e-mail here instead of OPS_EMAILS.")
        parser.add_argument(
            "--kind", default="ops.test", help="Kind to send as (to check per-kind webhooks)."
        )
        parser.add_argument(
            "--wait", type=float, default=30, help="Seconds to wait when a worker is delivering it."
        )

    def handle(self, *args, **options):
        kind = options["kind"]
        now = timezone.now()
        with transaction.atomic():
            notification = notify(
                kind=kind,
                title="Test alert from the Trans Bot back office",
                text=(
                    f"Sent by `manage.py notify_test` on {now:%Y-%m-%d %H:%M:%S} UTC.\n"
                    "What to do: nothing. If you can read this, this channel works."
                ),
                link=admin_changelist_url(Notification),
                email_to=options["email"],
                fields={"Site": settings.SITE_URL},
            )
        assert notification is not None  # without a dedup_key every call is a new alert
        # A running worker may claim it first (notify hands it over on commit): then wait
        # for that delivery instead of reporting "skipped" as a failure.
        outcome = notification_deliver(notification_id=notification.pk)
        deadline = time.monotonic() + options["wait"]
        notification = Notification.objects.get(pk=notification.pk)
        while notification.status == NotificationStatus.SENDING and time.monotonic() < deadline:
            time.sleep(0.2)
            notification = Notification.objects.get(pk=notification.pk)
        if outcome == "skipped":
            outcome = notification.status

        url = slack_webhook_for(kind)
        slack_lines: dict[str, str] = {
            ChannelStatus.SENT: f"sent to {_mask(url)}",
            ChannelStatus.OFF: "off (SLACK_WEBHOOK_URL is empty)",
            ChannelStatus.PENDING: f"NOT sent, will retry: {notification.last_error}",
            ChannelStatus.FAILED: f"FAILED: {notification.last_error}",
        }
        slack_line = slack_lines.get(notification.slack_status, notification.get_slack_status_display())
        email_lines: dict[str, str] = {
            ChannelStatus.SENT: f"sent to {', '.join(notification.email_to)} via {settings.EMAIL_BACKEND}",
            ChannelStatus.NONE: "no recipients (OPS_EMAILS is empty)",
            ChannelStatus.PENDING: f"NOT sent, will retry: {notification.last_error}",
            ChannelStatus.FAILED: f"FAILED: {notification.last_error}",
        }
        email_line = email_lines.get(notification.email_status, notification.get_email_status_display())
        ok = outcome == "sent"
        style = self.style.SUCCESS if ok else self.style.ERROR
        self.stdout.write(f"Slack:  {slack_line}")
        self.stdout.write(f"E-mail: {email_line}")
        self.stdout.write(style(f"Test alert #{notification.pk}: {notification.get_status_display()}"))
