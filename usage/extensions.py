"""Apps above usage add to what the usage summary API answers without usage importing
them (the layer rule): growth fills ``upgrade.prompt``. An extension gets the company, the
summary and the time it was computed for, and edits the summary in place."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from accounts.models import Company

SummaryExtension = Callable[[Company, dict[str, Any], datetime], None]
_extensions: list[SummaryExtension] = []


def summary_extension_register(extension: SummaryExtension) -> None:
    if extension not in _extensions:
        _extensions.append(extension)


def summary_extended(*, company: Company, summary: dict[str, Any], at: datetime) -> dict[str, Any]:
    summary.setdefault("upgrade", {}).setdefault("prompt", None)
    for extension in _extensions:
        extension(company, summary, at)
    return summary
