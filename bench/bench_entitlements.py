"""The entitlement check over HTTP under wrk load: ``POST /api/v1/entitlements/check/`` and
``GET /api/v1/entitlements/`` through gunicorn (sync workers, PostgreSQL), a company with
counters on every feature, a hard limit on bulk jobs and a capped contract override in force.
Goal: check p99 ≤ 5 ms. Sizes: BENCH_ENTITLEMENT_SECONDS (per turn, default 5),
BENCH_ENTITLEMENT_ROUNDS (default 3), BENCH_ENTITLEMENT_CONNECTIONS (default 4)."""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta

from benchdb import Request, bench_database, gunicorn, merge, size, take_turns, warm_up, wrk
from table import Row

BASELINE = (
    "The yardstick server (`bench/yardstick_wsgi.py`: a plain WSGI app on psycopg, same gunicorn, "
    "same BENCH_WORKERS) on the same database answers `POST /check` with one indexed query (key by prefix → "
    "company → the feature's tier limit and this period's counter) and `GET /summary` with the "
    "company's counters. wrk (1 thread, BENCH_ENTITLEMENT_CONNECTIONS connections) loads the project "
    "and the yardstick in turns of BENCH_ENTITLEMENT_SECONDS, BENCH_ENTITLEMENT_ROUNDS rounds; any "
    "non-2xx answer fails the run. The p99 is the worst turn's."
)
SECONDS = size("BENCH_ENTITLEMENT_SECONDS", 5)
ROUNDS = size("BENCH_ENTITLEMENT_ROUNDS", 3)
CONNECTIONS = size("BENCH_ENTITLEMENT_CONNECTIONS", 4)
CHECK_P99_MS = 5.0


def main() -> list[Row]:
    with bench_database() as db_name:
        from django.utils import timezone

        from accounts.models import Company, CompanyAPIKey
        from accounts.selectors import company_period
        from billing.plans.models import EntitlementOverride, Feature, LimitMode, Tier, TierLimit
        from usage.models import UsageCounter

        starter = Tier.objects.get(code="starter")
        TierLimit.objects.filter(tier=starter, feature__code="bulk_jobs").update(mode=LimitMode.HARD)
        company = Company.objects.create(name="Check Co", slug="check-co", tier=starter)
        _, secret = CompanyAPIKey.objects.create_key(company=company, name="bench")
        start, end = company_period(company)
        for feature in Feature.objects.all():
            UsageCounter.objects.create(
                company=company, feature=feature, period_start=start, period_end=end, used=7, updated_at=start
            )
        EntitlementOverride.objects.create(
            company=company, feature=Feature.objects.get(code="quotes"), included=5_000, mode=LimitMode.CAPPED,
            overage_unit_price=2, overage_cap=10_000, starts_at=timezone.now() - timedelta(days=1),
        )
        auth = {"Authorization": f"Api-Key {secret}"}
        body = json.dumps({"feature": "bulk_jobs", "quantity": 1})
        post = {**auth, "Content-Type": "application/json"}
        loads = {
            "check": [Request("POST", "/api/v1/entitlements/check/", post, body)],
            "check_base": [Request("POST", "/check", post, body)],
            "list": [Request("GET", "/api/v1/entitlements/", auth)],
            "list_base": [Request("GET", "/summary", auth)],
        }

        with contextlib.ExitStack() as stack:
            def load(name: str, base: str, seconds: float = SECONDS):
                return lambda r: wrk(base, loads[name], connections=CONNECTIONS, seconds=seconds,
                                     what=f"entitlements {name}")

            project = stack.enter_context(gunicorn(db_name))
            warm_up(project, loads["check"] + loads["list"])  # a misconfigured server fails here
            yardstick = stack.enter_context(gunicorn(db_name, app="yardstick_wsgi:app"))
            warm_up(yardstick, loads["check_base"] + loads["list_base"])
            got = take_turns(ROUNDS, check=load("check", project), check_base=load("check_base", yardstick),
                             list=load("list", project), list_base=load("list_base", yardstick))

    check, check_base = merge(got["check"]), merge(got["check_base"])
    lst, lst_base = merge(got["list"]), merge(got["list_base"])
    return [
        Row("entitlements", f"POST check, wrk {CONNECTIONS} connections", check.text(), check_base.text(),
            check.rate / check_base.rate, f"p99 ≤ {CHECK_P99_MS:.0f} ms", check.p99_ms <= CHECK_P99_MS),
        Row("entitlements", f"GET list, wrk {CONNECTIONS} connections", lst.text(), lst_base.text(),
            lst.rate / lst_base.rate, "report", None, note="baseline: the bare counters read"),
    ]
