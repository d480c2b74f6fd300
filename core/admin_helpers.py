"""Small admin building blocks every app uses: read-only history, the coloured status pill,
a long text shortened to one line with the whole on hover, a compact time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.contrib import admin
from django.db import models
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator


def status_pill(text: str, colour: str) -> SafeString:
    """A status word on a coloured background, the same everywhere in admin."""
    return format_html(
        '<span style="background:{};color:#fff;padding:1px 7px;border-radius:8px;font-size:11px;'
        'white-space:nowrap">{}</span>',
        colour,
        text,
    )


def short_text(text: str, chars: int = 60) -> SafeString | str:
    """One line of a list: at most ``chars`` characters, the whole text on hover."""
    if not text:
        return "–"
    return format_html('<span title="{}" style="white-space:nowrap">{}</span>', text, Truncator(text).chars(chars))


def short_time(moment: datetime | None) -> SafeString | str:
    """ "2025-06-02 09:01" (UTC) in a list, seconds and zone on hover."""
    if moment is None:
        return "–"
    moment = timezone.localtime(moment)
    return format_html(
        '<span title="{}" style="white-space:nowrap">{}</span>',
        f"{moment:%Y-%m-%d %H:%M:%S %Z}",
        f"{moment:%Y-%m-%d %H:%M}",
    )


def bullet_list(items: Iterable[object]) -> SafeString | str:
    """A list as a list (never ``['warning', 'exceeded']``)."""
    items = [str(item) for item in items]
    if not items:
        return "–"
    return format_html(
        '<ul style="margin:0;padding-left:1.2em">{}</ul>', format_html_join("", "<li>{}</li>", ((i,) for i in items))
    )


class ReadOnlyAdmin(admin.ModelAdmin):
    """History that must not change: no add, change or delete, even for superusers."""

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False
