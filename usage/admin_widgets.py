"""Small HTML pieces for the admin: usage progress bars coloured by status."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join

COLOURS = {"ok": "#2e7d32", "warning": "#ed8c00", "exceeded": "#c62828", "unlimited": "#607d8b"}


def progress_bar(*, label: str, used: int, included: int | None, level: str):
    if included is None:
        width, text, colour = 100, f"{used:,} / unlimited", COLOURS["unlimited"]
    else:
        percent = used * 100 / included if included else (100 if used else 0)
        width, text, colour = min(100, round(percent)), f"{used:,} / {included:,} ({percent:.0f} %)", COLOURS[level]
    return format_html(
        '<div title="{} {}" style="margin:1px 0;white-space:nowrap">'
        '<span style="display:inline-block;width:9em;font-size:11px">{}</span>'
        '<span style="display:inline-block;width:120px;height:9px;background:#e0e0e0;border-radius:4px;'
        'vertical-align:middle;overflow:hidden"><span style="display:block;width:{}%;height:9px;'
        'background:{}"></span></span> <span style="font-size:11px;color:{}">{}</span></div>',
        label,
        level,
        label,
        width,
        colour,
        colour if level != "ok" else "inherit",
        text,
    )


def bars(items: list[dict]):
    if not items:
        return "—"
    return format_html_join(
        "",
        "{}",
        ((progress_bar(label=i["name"], used=i["used"], included=i["included"], level=i["level"]),) for i in items),
    )

