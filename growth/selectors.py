"""Reads for experiments: a company's variant, the prompt to show, and the results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, F, Q, Sum

from accounts.models import Company
from billing.plans.models import Tier
from core import hotcache
from growth.assignment import assign
from growth.models import HOLDOUT, Experiment, ExperimentStatus, Placement, Variant
from growth.stats import Comparison, compare, enough_data, rate_interval


def running_experiment(*, placement: str) -> Experiment | None:
    return Experiment.objects.filter(placement=placement, status=ExperimentStatus.RUNNING).first()


def shipped_winner(*, placement: str) -> Variant | None:
    """The placement's default prompt: the winner of its most recently shipped experiment."""
    experiment = (
        Experiment.objects.filter(placement=placement, status=ExperimentStatus.SHIPPED, winner__isnull=False)
        .select_related("winner__highlighted_tier", "winner__experiment")
        .order_by("-stops_at", "-id")
        .first()
    )
    return experiment.winner if experiment is not None else None


def experiment_variants(experiment: Experiment) -> list[Variant]:
    return list(experiment.variants.select_related("highlighted_tier").order_by("key"))


def company_variant(
    *, experiment: Experiment, company: Company, variants: list[Variant] | None = None
) -> Variant | None:
    """The company's variant, or None in the holdout. Deterministic: nothing is stored."""
    variants = experiment_variants(experiment) if variants is None else variants
    key = assign(
        experiment_key=experiment.key,
        company_id=company.pk,
        variants=[(v.key, v.weight) for v in variants],
        holdout_share=experiment.holdout_share,
    )
    return next((v for v in variants if v.key == key), None)


def _peak_percent(summary: dict[str, Any] | None) -> float:
    if summary is None:
        return 0.0
    percents = [f["percent"] for f in summary.get("features", []) if f.get("percent") is not None]
    # A feature used on a zero allowance has no percent but is over its limit.
    over = any(f.get("percent") is None and f.get("limit") == 0 and f.get("used") for f in summary.get("features", []))
    return float("inf") if over else max(percents, default=0.0)


def prompt_content(variant: Variant, *, experiment: Experiment | None) -> dict[str, Any]:
    return {
        "experiment": experiment.key if experiment is not None else None,
        "variant": variant.key,
        "headline": variant.headline,
        "call_to_action": variant.call_to_action,
        "highlighted_tier": variant.highlighted_tier.code if variant.highlighted_tier else None,
        "threshold_percent": variant.threshold_percent,
    }


@dataclass(frozen=True)
class Prompt:
    content: dict[str, Any] | None  # None: the holdout, shown nothing but measured as exposed
    experiment: Experiment | None  # None for a shipped default: nothing to measure
    variant: Variant | None  # None: the holdout


# The usage summary asks on every request; these rows only change when an experiment
# starts, stops or ships (a running experiment's variants are locked).
_candidates: hotcache.HotCache[list[Variant]] = hotcache.HotCache(
    "placement candidates", depends_on=(Experiment, Variant, Tier)
)


def placement_candidates(placement: str) -> list[Variant]:
    """The running experiment's variants and the shipped winners at ``placement``, from
    this process's memory (``core.hotcache``): a start, stop or ship shows everywhere
    within a second. Do not change what is returned."""

    def load() -> list[Variant]:
        return list(
            Variant.objects.filter(experiment__placement=placement)
            .filter(
                Q(experiment__status=ExperimentStatus.RUNNING)
                | Q(experiment__status=ExperimentStatus.SHIPPED, experiment__winner_id=F("id"))
            )
            .select_related("experiment", "highlighted_tier")
            .order_by("key")
        )

    candidates = _candidates.get(placement, load)
    assert candidates is not None
    return candidates


def placement_prompt(*, company: Company, placement: str, summary: dict[str, Any] | None) -> Prompt | None:
    """What to show the company at ``placement``, given its usage summary: its variant of
    the running experiment, else the shipped winner; and only once a feature's usage
    reached the variant's threshold. A holdout company at the control's threshold gets a
    Prompt without content: it is shown nothing, and counted as the holdout. One query."""
    candidates = placement_candidates(placement)
    running = [v for v in candidates if v.experiment.status == ExperimentStatus.RUNNING]
    experiment: Experiment | None = None
    variant: Variant | None
    if running:
        experiment = running[0].experiment
        variant = company_variant(experiment=experiment, company=company, variants=running)
        if variant is None:
            control = next((v for v in running if v.is_control), running[0])
            if _peak_percent(summary) < control.threshold_percent:
                return None
            return Prompt(None, experiment, None)
    else:
        winners = sorted(candidates, key=lambda v: (v.experiment.stops_at or v.experiment.created_at, v.pk))
        variant = winners[-1] if winners else None
    if variant is None or _peak_percent(summary) < variant.threshold_percent:
        return None
    return Prompt(prompt_content(variant, experiment=experiment), experiment, variant)


def summary_prompt_fill(company: Company, summary: dict[str, Any], at: datetime) -> None:
    """The usage summary API's ``upgrade.prompt`` (the frontend records the exposure when it
    shows it) and ``upgrade.holdout``: the experiment a holdout company would have seen a
    prompt of, for the frontend to record that it showed nothing."""
    prompt = placement_prompt(company=company, placement=Placement.API_PROMPT, summary=summary)
    upgrade = summary.setdefault("upgrade", {})
    upgrade["prompt"] = prompt.content if prompt is not None else None
    upgrade["holdout"] = None
    if prompt is not None and prompt.variant is None and prompt.experiment is not None:
        upgrade["holdout"] = {"experiment": prompt.experiment.key}


@dataclass(frozen=True)
class VariantResult:
    key: str
    is_control: bool
    exposed: int
    converted: int
    rate: float
    low: float
    high: float
    revenue_uplift: int
    comparison: Comparison | None  # None for the control itself
    enough_data: bool
    is_holdout: bool = False


def experiment_results(experiment: Experiment) -> list[VariantResult]:
    """Per variant: companies exposed, companies converted, rate with its 95 % Wilson
    interval, monthly revenue uplift, and the test against control. Last, when the
    experiment has a holdout, the same for it ("no prompt at all") against control."""
    rows = (
        Variant.objects.filter(experiment=experiment)
        .annotate(
            exposed=Count("exposures__company", distinct=True),
            converted=Count("conversions", distinct=True),
        )
        .order_by("key")
    )
    uplift: dict[int | None, int] = dict(  # variant id (None: the holdout) → total
        experiment.conversions.values("variant_id").annotate(total=Sum("revenue_uplift")).values_list(
            "variant_id", "total"
        )
    )
    counted: list[tuple[str, bool, int | None, int, int]] = [
        (v.key, v.is_control, v.pk, int(v.exposed), int(v.converted)) for v in rows
    ]
    held_exposed = experiment.exposures.filter(variant__isnull=True).values("company").distinct().count()
    if experiment.holdout_share > 0 or held_exposed:
        held_converted = experiment.conversions.filter(variant__isnull=True).count()
        counted.append((HOLDOUT, False, None, held_exposed, held_converted))
    control = next(((e, c) for _, is_control, _, e, c in counted if is_control), None)
    results = []
    for key, is_control, pk, exposed, converted in counted:
        comparison = None
        if control is not None and not is_control:
            comparison = compare(
                converted=converted, exposed=exposed, control_converted=control[1], control_exposed=control[0]
            )
        low, high = rate_interval(converted, exposed)
        results.append(
            VariantResult(
                key=key,
                is_control=is_control,
                exposed=exposed,
                converted=converted,
                rate=converted / exposed if exposed else 0.0,
                low=low,
                high=high,
                revenue_uplift=int(uplift.get(pk) or 0),
                comparison=comparison,
                enough_data=enough_data(exposed=exposed, converted=converted),
                is_holdout=pk is None,
            )
        )
    return results


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f} %"


def results_sentence(results: list[VariantResult]) -> str:
    """One plain sentence per variant against control: "B converts 6.1 % vs 3.9 %, p = 0.03; enough data"."""
    control = next((r for r in results if r.is_control), None)
    if control is None:
        return "No control variant: nothing to compare against."
    parts = []
    for r in results:
        if r.comparison is None:
            continue
        p = r.comparison.p_value
        p_text = "p not computable yet" if p is None else ("p < 0.001" if p < 0.001 else f"p = {p:.2f}")
        verdict = (
            "enough data"
            if r.enough_data and control.enough_data
            else "not enough data yet (needs 100 companies exposed and 10 conversions per variant)"
        )
        name = "the holdout (no prompt)" if r.is_holdout else r.key
        parts.append(f"{name} converts {_pct(r.rate)} vs {_pct(control.rate)}, {p_text}; {verdict}")
    return ". ".join(parts) + "." if parts else "Only the control variant: nothing to compare."

