"""Which company an API request is about. A key is its company; a user is their one
company, or the one they name (``company``: an id or slug) among theirs; staff may name
any company. Anything else is 404, so a tenant cannot learn whether another company exists.
What the caller may then do with the company (read usage, change billing) is the caller's rule."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.http import Http404
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from accounts.models import Company, CompanyAPIKey, Membership


@dataclass(frozen=True)
class RequestCompany:
    company: Company
    role: str | None  # the user's membership role; None for a key, or for staff naming a company
    as_staff: bool  # staff named a company: the caller's staff rule admitted it, not a membership


def company_by_reference(value: str) -> Company | None:
    if "\x00" in value:  # no such slug, and PostgreSQL text cannot hold NUL
        return None
    # isascii(): "²".isdigit() is true, but int("²") fails.
    lookup = {"pk": int(value)} if value.isascii() and value.isdigit() else {"slug": value}
    return Company.objects.select_related("tier").filter(**lookup).first()


def request_company(request: Request, wanted: str | None, *, staff: bool, how_to_name: str = "") -> RequestCompany:
    """``staff`` is the caller's rule for who may name any company; ``how_to_name`` ends the
    "name one" messages (" (?company=<slug>)")."""
    wanted = (wanted or "").strip()
    if isinstance(request.auth, CompanyAPIKey):
        own = request.auth.company
        if wanted and wanted not in (str(own.pk), own.slug):
            raise Http404
        return RequestCompany(company=own, role=None, as_staff=False)
    user = request.user
    assert isinstance(user, User)  # the views admit only a key (above) or a signed-in user
    if wanted:
        company = company_by_reference(wanted)
        if company is None:
            raise Http404
        if staff:
            return RequestCompany(company=company, role=None, as_staff=True)
        role = Membership.objects.filter(user=user, company=company).values_list("role", flat=True).first()
        if role is None:
            raise Http404
        return RequestCompany(company=company, role=role, as_staff=False)
    memberships = list(Membership.objects.filter(user=user).select_related("company__tier")[:2])
    if not memberships:
        if staff:
            raise ValidationError({"company": [f"Staff must name a company{how_to_name}."]})
        raise Http404
    if len(memberships) > 1:
        raise ValidationError({"company": [f"You belong to several companies: name one{how_to_name}."]})
    return RequestCompany(company=memberships[0].company, role=memberships[0].role, as_staff=False)
