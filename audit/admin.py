import json

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.utils.html import format_html
from django_celery_beat import admin as beat_admin
from django_celery_beat import models as beat_models
from rest_framework.authtoken.admin import TokenAdmin
from rest_framework.authtoken.models import TokenProxy
from rest_framework_api_key.models import APIKey
from waffle import admin as waffle_admin
from waffle import models as waffle_models

from audit.admin_mixins import AuditedAdminMixin
from audit.models import AuditLog
from core.admin_helpers import ReadOnlyAdmin


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ("seq", "created_at", "action", "actor_label", "actor_type", "target_repr", "company_name", "ip")
    list_filter = ("action", "actor_type", "created_at", "company_name")
    search_fields = ("action", "actor_label", "target_repr", "target_id", "company_name", "request_id", "hash")
    date_hierarchy = "created_at"
    ordering = ("-seq",)
    show_full_result_count = False
    fieldsets = (
        (None, {"fields": ("seq", "created_at", "action")}),
        ("Who", {"fields": ("actor_type", "actor_label", "actor_user_id", "ip", "request_id")}),
        ("What", {"fields": (
            "target_type", "target_id", "target_repr", "company_name", "company_id", "pretty_details",
        )}),
        ("Tamper evidence", {"fields": ("prev_hash", "hash")}),
    )
    readonly_fields = flatten_fieldsets(fieldsets)

    @admin.display(description="details")
    def pretty_details(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.details, indent=2, sort_keys=True, ensure_ascii=False))


# Access changes are what SOC 2 auditors sample first: users, groups, permissions.
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    pass


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    pass


# Schedules (beat) and switches (waffle) are edited in admin too: audit them.
for model, base in [
    (beat_models.PeriodicTask, beat_admin.PeriodicTaskAdmin),
    (beat_models.IntervalSchedule, beat_admin.IntervalScheduleAdmin),
    (beat_models.CrontabSchedule, beat_admin.CrontabScheduleAdmin),
    (waffle_models.Switch, waffle_admin.SwitchAdmin),
    (waffle_models.Flag, waffle_admin.FlagAdmin),
    (waffle_models.Sample, waffle_admin.SampleAdmin),
    (TokenProxy, TokenAdmin),
]:
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, type(f"Audited{base.__name__}", (AuditedAdminMixin, base), {}))

# The library's own key model is unused (company keys are billing.CompanyAPIKey): hide it.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)
