"""Celery entry points; each one calls a service."""

from celery import shared_task
from django.utils import timezone

from audit.services import Actor
from compliance.periods import period_parse, previous_month
from compliance.services import evidence_pack_store


@shared_task(name="compliance.tasks.store_monthly_evidence_pack")
def store_monthly_evidence_pack(period: str = "") -> int:
    """Last month's pack (or ``period``, ``FIRST..LAST``); a rerun keeps the stored one."""
    chosen = period_parse(period) if period else previous_month(timezone.now().date())
    pack, _created = evidence_pack_store(period=chosen, actor=Actor.system("evidence-monthly"))
    return pack.pk
