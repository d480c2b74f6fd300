"""Celery entry points; each one calls a service."""

from celery import shared_task

from regions import services


@shared_task(name="regions.tasks.probe_regions", ignore_result=False)
def probe_regions() -> dict:
    report = services.regions_probe_cycle()
    return {
        "checked_at": report.checked_at.isoformat(),
        "ok": {region.slug: result.ok for region, result in report.probes},
        "gate": report.gate.action if report.gate else None,
    }


@shared_task(name="regions.tasks.prune_probes")
def prune_probes() -> int:
    return services.probes_prune()
