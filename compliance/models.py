"""Stored SOC 2 evidence packs.

The zip lives in the database, next to the data it was built from: web processes and
workers run on any machine (README, "Scaling past one machine"), so a file written by
the worker that built it would not be there for the web process that serves it.
"""

from __future__ import annotations

from django.db import models


class EvidencePack(models.Model):
    first_day = models.DateField()
    last_day = models.DateField(help_text="Included.")
    file = models.BinaryField(editable=False, help_text="The zip, as built.")
    filename = models.CharField(max_length=100)
    sha256 = models.CharField(max_length=64, help_text="Of the whole zip; also in the audit trail.")
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=150, help_text="Who or what built it (the monthly job, a user).")

    class Meta:
        ordering = ["-first_day", "-created_at"]
        constraints = [
            # The monthly job may run twice (a retry, two beats): one pack per period.
            models.UniqueConstraint(fields=["first_day", "last_day"], name="compliance_one_pack_per_period"),
            models.CheckConstraint(
                condition=models.Q(first_day__lte=models.F("last_day")), name="compliance_period_order"
            ),
        ]
        permissions = [("download_evidencepack", "Can download SOC 2 evidence packs")]

    def __str__(self) -> str:
        return f"SOC 2 evidence {self.first_day}..{self.last_day}"
