"""Small admin building blocks every app uses: read-only history, the coloured status pill."""

from __future__ import annotations

from django.contrib import admin
from django.db import models
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString


def status_pill(text: str, colour: str) -> SafeString:
    """A status word on a coloured background, the same everywhere in admin."""
    return format_html(
        '<span style="background:{};color:#fff;padding:1px 7px;border-radius:8px;font-size:11px;'
        'white-space:nowrap">{}</span>',
        colour,
        text,
    )


class ReadOnlyAdmin(admin.ModelAdmin):
    """History that must not change: no add, change or delete, even for superusers."""

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False
