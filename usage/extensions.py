"""Apps above usage add to what usage says without usage importing them (the layer rule):
growth fills the summary API's ``upgrade.prompt`` and adds its prompt to the owners'
warning e-mail. A summary extension gets the company, the summary and the time it was
computed for, and edits the summary in place; an e-mail extension gets the company and the
feature's percent of its limit and returns a paragraph to add (or None)."""

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


EmailExtension = Callable[[Company, float], str | None]
_email_extensions: list[EmailExtension] = []


def warning_email_extension_register(extension: EmailExtension) -> None:
    if extension not in _email_extensions:
        _email_extensions.append(extension)


def warning_email_extras(*, company: Company, percent: float) -> list[str]:
    """Paragraphs to add to an owners' usage e-mail about to be queued."""
    return [text for extension in _email_extensions if (text := extension(company, percent))]
