"""Demo data for the ops spine: a welcome alert and a few ops tasks to click through.
Idempotent: everything carries a dedup key."""

from django.db import transaction

from core.links import admin_changelist_url
from ops.models import Notification
from ops.services import notify, ops_task_open


def load(*, stdout) -> None:
    outbox = admin_changelist_url(Notification)
    with transaction.atomic():
        alert = notify(
            kind="ops.demo",
            title="Demo: the ops spine is wired up",
            text="This alert was queued by `manage.py demo_data`.\n"
            "What to do: open the outbox and check it was delivered (Slack is off until "
            "SLACK_WEBHOOK_URL is set; e-mail goes to the console in the demo).",
            link=outbox,
            dedup_key="ops.demo:welcome",
        )
        opened = 0
        for kind, title, severity, details in (
            (
                "usage.breach",
                "Demo: a company is over its quotes limit",
                "high",
                "Call the account owner, offer the next tier; overage is billed automatically.",
            ),
            (
                "region.failover",
                "Demo: review yesterday's failover",
                "critical",
                "Check the probe history, confirm the primary is healthy, decide when to fail back.",
            ),
            (
                "billing.payment_failed",
                "Demo: a card was declined",
                "medium",
                "Stripe retries on its own; contact the customer if the second retry fails.",
            ),
        ):
            _, created = ops_task_open(
                kind=kind, title=title, severity=severity, details=details, dedup_key=f"ops.demo:{kind}"
            )
            opened += created
    stdout.write(
        f"ops: {'queued a welcome alert' if alert else 'welcome alert already there'}, "
        f"opened {opened} demo task(s)"
    )
