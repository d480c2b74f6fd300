"""Demo regions: two stand-in regions that ``scripts/demo.sh`` serves with ``fake_region``.

Safe to run again: creates what is missing, never moves traffic that already moved.
"""

from __future__ import annotations

import os

from django.db import transaction

from regions import routing
from regions.models import Region
from regions.selectors import policy_get
from regions.services import policy_sync_schedule

PRIMARY_PORT = int(os.environ.get("DEMO_PRIMARY_REGION_PORT", "8101"))
SECONDARY_PORT = int(os.environ.get("DEMO_SECONDARY_REGION_PORT", "8102"))


def load(*, stdout) -> None:
    with transaction.atomic():
        primary, _ = Region.objects.get_or_create(
            slug="primary",
            defaults={
                "name": "Primary (eu-west)",
                "base_url": f"http://127.0.0.1:{PRIMARY_PORT}",
                "order": 0,
                "probe_timeout": 2.0,
            },
        )
        Region.objects.get_or_create(
            slug="secondary",
            defaults={
                "name": "Secondary (us-east)",
                "base_url": f"http://127.0.0.1:{SECONDARY_PORT}",
                "order": 1,
                "probe_timeout": 2.0,
            },
        )
        if not Region.objects.filter(is_active=True).exists():
            Region.objects.filter(pk=primary.pk).update(is_active=True)
        policy = policy_get()
        if not policy.multi_region_enabled:
            policy.multi_region_enabled = True
            policy.save(update_fields=["multi_region_enabled"])
        policy_sync_schedule(policy=policy)
        transaction.on_commit(routing.publish)
    stdout.write(
        f"Regions: primary on :{PRIMARY_PORT} (active), secondary on :{SECONDARY_PORT}; "
        "run `manage.py gameday` for a drill."
    )
