"""Absolute links for alerts and e-mails: they are read outside the site (Slack, a
mailbox), so every link carries ``SITE_URL``."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.db import models
from django.urls import reverse


def absolute_url(path: str) -> str:
    return settings.SITE_URL + path


def admin_url(obj: models.Model) -> str:
    """The object's admin page."""
    meta = obj._meta
    return absolute_url(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk]))


def admin_changelist_url(model: type[models.Model], **filters: str) -> str:
    """The model's admin list, optionally filtered (``kind="regions.failover"``)."""
    meta = model._meta
    path = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    return absolute_url(path + (f"?{urlencode(filters)}" if filters else ""))
