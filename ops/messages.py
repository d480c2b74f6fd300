"""How an alert reads in Slack (Block Kit + plain-text fallback) and in an e-mail.

Every message answers the same questions in the same order: what happened (title),
where and what to do (the caller's text and fields), when, and a link to look at it.
"""

from __future__ import annotations

from typing import Any

from ops.models import Notification

SEVERITY_MARK = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


def when_text(notification: Notification) -> str:
    return notification.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")


def facts(notification: Notification) -> list[tuple[str, str]]:
    """The key facts, in display order: the caller's fields, then company, severity, when."""
    items = [(str(k), str(v)) for k, v in (notification.fields or {}).items()]
    if notification.company_id is not None and notification.company is not None:
        items.append(("Company", str(notification.company)))
    items.append(("Severity", notification.get_severity_display()))
    items.append(("When", when_text(notification)))
    return items


def slack_message(notification: Notification) -> tuple[str, list[dict[str, Any]]]:
    mark = SEVERITY_MARK.get(notification.severity, "")
    title = f"{mark} {notification.title}".strip()
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
    ]
    if notification.text:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": notification.text[:3000]}})
    # A section holds at most 10 fields of at most 2000 characters each.
    fact_items = facts(notification)
    for start in range(0, len(fact_items), 10):
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{name}*\n{value}"[:2000]}
                    for name, value in fact_items[start : start + 10]
                ],
            }
        )
    if notification.link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in admin"},
                        "url": notification.link,
                    }
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"`{notification.kind}` · alert #{notification.pk}"}],
        }
    )
    return fallback_text(notification), blocks


def fallback_text(notification: Notification) -> str:
    lines = [f"[{notification.get_severity_display()}] {notification.title}"]
    if notification.text:
        lines.append(notification.text)
    lines.extend(f"{name}: {value}" for name, value in facts(notification) if name != "Severity")
    if notification.link:
        lines.append(f"Open: {notification.link}")
    return "\n".join(lines)


def email_message(notification: Notification) -> tuple[str, str]:
    subject = f"[Trans Bot {notification.get_severity_display()}] {notification.title}"
    lines = [notification.title, ""]
    if notification.text:
        lines += [notification.text, ""]
    lines += [f"{name}: {value}" for name, value in facts(notification)]
    if notification.link:
        lines += ["", f"Open in admin: {notification.link}"]
    lines += ["", f"-- Trans Bot back office · {notification.kind} · alert #{notification.pk}"]
    return subject[:250].replace("\n", " "), "\n".join(lines)
