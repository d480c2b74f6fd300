from __future__ import annotations

from django.contrib.auth.forms import SetPasswordForm

from accounts.password_reset import password_reset_complete


class ResetPasswordForm(SetPasswordForm):
    """Django's "set a new password" form (its validators, both fields), saved through the
    reset service so the reset page and the API leave the same audit record."""

    def save(self, commit: bool = True):
        password_reset_complete(user=self.user, new_password=self.cleaned_data["new_password1"])
        return self.user
