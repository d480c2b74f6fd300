"""Forms of the account pages: every field has a label (templates render ``label_tag``)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts.signin import user_sign_in
from accounts.throttles import SignInLocked
from billing.plans.models import alert_levels_parse
from billing.plans.selectors import MAX_QUOTE_VOLUME


class SignInForm(AuthenticationForm):
    """Django's sign-in form, checked through ``accounts.signin`` like the login API: the
    same lock on repeated failures per address and username, and the same audit records.
    A valid form has signed the user in already."""

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            assert self.request is not None  # LoginView always passes it
            try:
                user = user_sign_in(request=self.request, username=username, password=password)
            except SignInLocked as exc:
                minutes = max(1, math.ceil(exc.wait / 60))
                raise forms.ValidationError(
                    f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes > 1 else ''}.",
                    code="locked",
                )
            if user is None:
                raise self.get_invalid_login_error()
            self.user_cache = user  # type: ignore[assignment]  # AUTH_USER_MODEL, typed as User
            self.confirm_login_allowed(user)  # type: ignore[arg-type]
        return self.cleaned_data


class APIKeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=50,
        help_text="Where the key is used, e.g. “production backend”.",
    )


def volumes_form(features: list[Any], data: Any = None, initial: dict[str, int] | None = None) -> forms.Form:
    """The calculator's form: one whole-number field per feature of the catalogue."""
    fields = {
        feature.code: forms.IntegerField(
            label=f"{feature.name} per month",
            min_value=0,
            max_value=MAX_QUOTE_VOLUME,
            required=False,
            help_text=f"{feature.unit}s",
            widget=forms.NumberInput(attrs={"inputmode": "numeric", "min": 0, "step": 1}),
        )
        for feature in features
    }
    form_class = type("VolumesForm", (forms.Form,), fields)
    return form_class(data=data, initial=initial or {})


class UsageAlertsForm(forms.Form):
    """The owners' own alert levels and monthly spend cap (money in the plan's currency)."""

    alert_levels = forms.CharField(
        label="Your alert levels",
        required=False,
        max_length=200,
        help_text="Percents of each included quantity, e.g. “50, 90”: added to your plan's levels.",
    )
    spend_cap = forms.DecimalField(
        label="Monthly spend cap",
        required=False,
        min_value=Decimal("0"),
        max_value=Decimal("10000000"),
        decimal_places=2,
        help_text="The most overage (usage beyond your plan) you will pay per billing period. Empty: no cap.",
        widget=forms.NumberInput(attrs={"inputmode": "decimal", "min": 0, "step": "0.01"}),
    )

    def __init__(self, *args: Any, currency: str = "USD", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["spend_cap"].label = f"Monthly spend cap ({currency.upper()})"

    def clean_alert_levels(self) -> list[int]:
        return alert_levels_parse(self.cleaned_data.get("alert_levels") or "")

    def clean_spend_cap(self) -> int | None:
        """In minor units (cents)."""
        value = self.cleaned_data.get("spend_cap")
        return None if value is None else int(value * 100)
