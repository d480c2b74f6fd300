"""The admin login form, auditing every refusal.

Django signals ``user_login_failed`` only when the password is wrong. A right password
whose owner may not use the admin (not staff, or inactive) is refused by the form after
``authenticate`` succeeded, with no signal: this form records that refusal too.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from audit.services import Actor, audit_record


class AuditedAdminAuthenticationForm(AdminAuthenticationForm):
    def confirm_login_allowed(self, user: Any) -> None:
        try:
            super().confirm_login_allowed(user)
        except ValidationError:
            audit_record(
                action="auth.login_failed",
                actor=Actor.external(user.get_username()),
                target=user,
                details={"reason": "inactive" if not user.is_active else "not a staff account", "where": "admin"},
            )
            raise
