from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from django.contrib import admin

        from audit import signals  # noqa: F401
        from audit.forms import AuditedAdminAuthenticationForm

        # A right password refused by the admin (not staff, inactive) is audited too.
        admin.site.login_form = AuditedAdminAuthenticationForm
