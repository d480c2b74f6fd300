"""The account pages: server-rendered, for a company's members.

Every account page is about one company: the user's only one, or the one named by
``?company=<slug>`` among theirs. A company the user is not a member of is a 404, whatever
the page, so nobody learns whether another company exists. Owners (and admins, as the
billing API allows) change the plan and open the billing portal; only owners manage API
keys.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from decimal import Decimal
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import CompanyAPIKey
from accounts.services import company_api_key_create, company_api_key_revoke
from audit.services import Actor
from billing.plans.models import Feature, Tier
from billing.plans.selectors import plans_quote
from billing.stripe.gateway import StripeGatewayError
from billing.stripe.upgrades import UpgradeRefused, billing_change_tier, billing_portal_session
from core.money import format_money
from customers.forms import APIKeyCreateForm, SignInForm, UsageAlertsForm, volumes_form
from customers.selectors import (
    Seat,
    account_history,
    account_plans,
    account_usage,
    company_api_keys,
    company_owners,
    member_seats,
)
from growth.models import ExposureSource, Placement
from growth.services import prompt_show
from usage.selectors import usage_summary
from usage.services import usage_alerts_update


class AccountLoginView(LoginView):
    template_name = "customers/login.html"
    authentication_form = SignInForm

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        # The form signed the user in (accounts.signin); signing in again would audit twice.
        return HttpResponseRedirect(self.get_success_url())


def home(request: HttpRequest) -> HttpResponse:
    """``/``: a member to their account, anyone else to the sign-in page."""
    if member_seats(request.user):
        return redirect("customers:usage")
    return redirect("customers:login")


def _pick(request: HttpRequest, seats: list[Seat]) -> Seat | HttpResponse:
    wanted = request.GET.get("company", "").strip()
    if wanted:
        for seat in seats:
            if wanted in (seat.company.slug, str(seat.company.pk)):
                return seat
        raise Http404("No such company among yours.")
    if len(seats) == 1:
        return seats[0]
    if not seats:
        raise Http404("This account is not a member of any company.")
    return render(request, "customers/pick_company.html", {"seats": seats, "next": request.path})


def account_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in, and the page's company resolved to one of the user's (else 404)."""

    @login_required
    @never_cache
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        seats = member_seats(request.user)
        picked = _pick(request, seats)
        if isinstance(picked, HttpResponse):
            return picked
        return view(request, picked, *args, seats=seats, **kwargs)

    return wrapper


def _page(request: HttpRequest, template: str, seat: Seat, seats: list[Seat], nav: str, **context: Any) -> HttpResponse:
    return render(
        request,
        template,
        {
            "seat": seat,
            "company": seat.company,
            "seats": seats,
            "nav": nav,
            "q": "?" + urlencode({"company": seat.company.slug}),
            **context,
        },
    )


def _to(name: str, seat: Seat, **params: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse(name) + "?" + urlencode({"company": seat.company.slug, **params}))


@account_page
def usage(request: HttpRequest, seat: Seat, *, seats: list[Seat]) -> HttpResponse:
    context = account_usage(company=seat.company)
    # The experiment's banner (or the shipped winner's): rendering it is the exposure.
    context["growth_prompt"] = prompt_show(
        company=seat.company, placement=Placement.USAGE_BANNER, summary=context["summary"], source=ExposureSource.PAGE
    )
    return _page(request, "customers/usage.html", seat, seats, "usage", **context)


@account_page
def plans(request: HttpRequest, seat: Seat, *, seats: list[Seat]) -> HttpResponse:
    checkout = request.GET.get("checkout")
    if checkout == "success":
        messages.success(request, "Payment done. Your new plan is active as soon as Stripe confirms it.")
    elif checkout == "cancel":
        messages.info(request, "Checkout was canceled; your plan did not change.")
    context = account_plans(company=seat.company)
    context["growth_prompt"] = prompt_show(
        company=seat.company, placement=Placement.PLAN_TABLE, summary=context["summary"], source=ExposureSource.PAGE
    )
    return _page(
        request,
        "customers/plans.html",
        seat,
        seats,
        "plans",
        owners=company_owners(seat.company),
        **context,
    )


def _require_billing_role(seat: Seat) -> None:
    if not seat.manages_billing:
        raise PermissionDenied("Only the company's owners can change its plan.")


@require_POST
@account_page
def plan_change(request: HttpRequest, seat: Seat, *, seats: list[Seat]) -> HttpResponse:
    """The upgrade button: Stripe Checkout for a first subscription, else the prorated change."""
    _require_billing_role(seat)
    tier = Tier.objects.filter(code=request.POST.get("tier", ""), is_public=True).first()
    if tier is None:
        messages.error(request, "That plan is not offered.")
        return _to("customers:plans", seat)
    try:
        result = billing_change_tier(company=seat.company, tier=tier, actor=Actor.of_user(request.user))
    except UpgradeRefused as exc:
        messages.error(request, str(exc))
        return _to("customers:plans", seat)
    except StripeGatewayError as exc:
        messages.error(
            request,
            "Stripe is not reachable right now; try again in a minute."
            if exc.retryable
            else "Stripe refused the plan change; we have been told and will be in touch.",
        )
        return _to("customers:plans", seat)
    if result["action"] == "checkout" and result.get("url"):
        return HttpResponseRedirect(result["url"])
    messages.success(request, f"You are now on {tier.name}. The difference for this period is prorated.")
    return _to("customers:plans", seat)


@require_POST
@account_page
def billing_portal(request: HttpRequest, seat: Seat, *, seats: list[Seat]) -> HttpResponse:
    _require_billing_role(seat)
    try:
        url = billing_portal_session(company=seat.company, actor=Actor.of_user(request.user))
    except StripeGatewayError:
        messages.error(request, "The billing portal is not available right now; try again in a minute.")
        return _to("customers:plans", seat)
    return HttpResponseRedirect(url)


@account_page
def history(request: HttpRequest, seat: Seat, *, seats: list[Seat]) -> HttpResponse:
    return _page(request, "customers/history.html", seat, seats, "history", **account_history(company=seat.company))


@account_page
def history_csv(request: HttpRequest, seat: Seat, *, seats: list[Seat]) -> HttpResponse:
    data = account_history(company=seat.company)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{seat.company.slug}-usage-history.csv"'
    writer = csv.writer(response)
    writer.writerow(
        ["period_start", "period_end", "tier", *(f.code for f in data["features"]), "overage_billed", "currency"]
    )
    for row in data["periods"]:
        writer.writerow(
            [
                row["start"].date().isoformat(),
                row["end"].date().isoformat(),
                " → ".join(row["tiers"]),
                *row["usage"],
                f"{row['overage_billed'] / 100:.2f}",
                data["currency"],
            ]
        )
    return response


def _require_owner(seat: Seat) -> None:
    if not seat.is_owner:
        raise PermissionDenied("Only the company's owners manage its API keys.")


@require_http_methods(["GET", "POST"])
@account_page
def api_keys(request: HttpRequest, seat: Seat, *, seats: list[Seat]) -> HttpResponse:
    _require_owner(seat)
    form = APIKeyCreateForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        key, secret = company_api_key_create(
            company=seat.company, name=form.cleaned_data["name"], actor=Actor.of_user(request.user)
        )
        created = {"key": key, "secret": secret}
        form = APIKeyCreateForm()
    response = _page(
        request,
        "customers/api_keys.html",
        seat,
        seats,
        "api_keys",
        form=form,
        created=created,
        keys=company_api_keys(seat.company),
    )
    if form.errors:
        response.status_code = 400
    return response


@require_POST
@account_page
def api_key_revoke(request: HttpRequest, seat: Seat, prefix: str, *, seats: list[Seat]) -> HttpResponse:
    _require_owner(seat)
    key = CompanyAPIKey.objects.filter(company=seat.company, prefix=prefix).first()
    if key is None:
        raise Http404("No such key.")
    if company_api_key_revoke(key=key, actor=Actor.of_user(request.user)):
        messages.success(request, f"Key {key.prefix} ({key.name}) is revoked: requests with it are refused.")
    else:
        messages.info(request, f"Key {key.prefix} was already revoked.")
    return _to("customers:api_keys", seat)


def _require_owner_for_alerts(seat: Seat) -> None:
    if not seat.is_owner:
        raise PermissionDenied("Only the company's owners set its usage alerts and spend cap.")


@require_http_methods(["GET", "POST"])
@account_page
def usage_alerts(request: HttpRequest, seat: Seat, *, seats: list[Seat]) -> HttpResponse:
    """The owners' own alert levels and monthly spend cap (audited, through the service
    ingestion reads them with)."""
    _require_owner_for_alerts(seat)
    company = seat.company
    currency = company.tier.currency
    initial = {
        "alert_levels": ", ".join(str(level) for level in company.alert_levels or []),
        "spend_cap": None if company.spend_cap is None else Decimal(company.spend_cap) / 100,
    }
    form = UsageAlertsForm(request.POST or None, initial=initial, currency=currency)
    if request.method == "POST" and form.is_valid():
        changed = usage_alerts_update(
            company=company,
            levels=form.cleaned_data["alert_levels"],
            spend_cap=form.cleaned_data["spend_cap"],
            actor=Actor.of_user(request.user),
        )
        if changed:
            messages.success(request, "Saved: your alert levels and spend cap apply from the next usage report.")
        else:
            messages.info(request, "Nothing changed.")
        return _to("customers:usage_alerts", seat)
    spent = usage_summary(company=company)["totals"]["overage_cost"]
    response = _page(
        request,
        "customers/usage_alerts.html",
        seat,
        seats,
        "alerts",
        form=form,
        tier_levels=", ".join(f"{level} %" for level in company.tier.alert_levels or []) or "none",
        own_levels=", ".join(f"{level} %" for level in company.alert_levels or []),
        spent=format_money(spent, currency),
        cap=None if company.spend_cap is None else format_money(company.spend_cap, currency),
        at_cap=company.spend_cap is not None and spent >= company.spend_cap,
    )
    if form.errors:
        response.status_code = 400
    return response


def pricing(request: HttpRequest) -> HttpResponse:
    """The public calculator. Inside the account (a member, their company resolved) it
    starts from the company's projected usage for this period."""
    features = list(Feature.objects.order_by("order", "code"))
    seats = member_seats(request.user)
    seat = None
    if seats:  # a member naming another company gets 404 here too
        picked = _pick(request, seats)
        seat = picked if isinstance(picked, Seat) else None
    given = any(f.code in request.GET for f in features)
    initial: dict[str, int] = {}
    if seat is not None:
        projected = {f["feature"]: f["projected_used"] for f in usage_summary(company=seat.company)["features"]}
        initial = {f.code: projected.get(f.code, 0) for f in features}
    form = volumes_form(features, data=request.GET if given else None, initial=initial)
    quote = None
    if given and form.is_valid():
        quote = plans_quote(volumes={code: value or 0 for code, value in form.cleaned_data.items()})
    elif not given:
        quote = plans_quote(volumes={f.code: initial.get(f.code, 0) for f in features})
    status = 400 if given and not form.is_valid() else 200
    context: dict[str, Any] = {
        "form": form,
        "quote": quote,
        "features": features,
        "from_projection": seat is not None and not given,
    }
    if seat is not None:
        q = "?" + urlencode({"company": seat.company.slug})
        context.update(seat=seat, company=seat.company, seats=seats, nav="pricing", q=q)
    return render(request, "customers/pricing.html", context, status=status)
