"""Companies, their members and their API keys in admin. Writes that carry a rule go
through the services (a tier change, a new key); everything else is audited by the mixin."""

from __future__ import annotations

from django.contrib import admin, messages

from accounts.models import Company, CompanyAPIKey, Membership
from accounts.services import company_api_key_create, company_api_key_revoke, company_set_tier, key_target
from audit.admin_mixins import AuditedAdminMixin, AuditedInlinesMixin, diff, snapshot
from audit.services import Actor, audit_record
from core.admin_helpers import status_pill


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    raw_id_fields = ["user"]


class CompanyAPIKeyInline(admin.TabularInline):
    model = CompanyAPIKey
    extra = 0
    readonly_fields = ("name", "prefix", "created", "last_used_at", "revoked", "expiry_date")
    fields = readonly_fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


STATUS_COLOURS = {"trialing": "#1565c0", "active": "#2e7d32", "past_due": "#c62828", "canceled": "#757575"}


@admin.register(Company)
class CompanyAdmin(AuditedInlinesMixin, admin.ModelAdmin):
    """A company's plan is changed through ``company_set_tier`` (audited as a tier change);
    its status is never edited by hand: Stripe's registers derive it."""

    list_display = ["name", "tier", "coloured_status", "billing_anchor_day", "created_at"]
    list_filter = ["tier", "status"]
    list_select_related = ["tier"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline, CompanyAPIKeyInline]
    fieldsets = [
        (None, {"fields": ["name", "slug"]}),
        ("Plan", {"fields": ["tier", "status", "billing_anchor_day"]}),
    ]
    readonly_fields = ["status"]

    def audit_company(self, obj):
        return obj

    @admin.display(description="status", ordering="status")
    def coloured_status(self, company):
        return status_pill(company.get_status_display(), STATUS_COLOURS.get(company.status, "#555"))

    def save_model(self, request, obj, form, change):
        if change and "tier" in form.changed_data:
            # Saved with the stored tier; the service moves it after, with its own audit record.
            request._tier_to = obj.tier
            obj.tier_id = form.initial["tier"]
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        tier = getattr(request, "_tier_to", None)
        if tier is not None:
            company_set_tier(
                company=form.instance, tier=tier, actor=Actor.of_user(request.user), reason="changed in admin"
            )


@admin.register(CompanyAPIKey)
class CompanyAPIKeyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Create a key here: its secret is shown once, in the message after saving, and is
    never stored (only its hash). Revoking is for good."""

    audit_exclude = {"id", "hashed_key", "last_login"}
    list_display = ["name", "company", "prefix", "created", "last_used_at", "revoked", "expiry_date"]
    list_filter = ["revoked"]
    search_fields = ["name", "prefix", "company__name"]
    list_select_related = ["company"]
    actions = ["revoke_keys"]
    autocomplete_fields = ["company"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["company", "name", "expiry_date"]
        return ["company", "name", "prefix", "created", "last_used_at", "revoked", "expiry_date"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["company", "prefix", "created", "last_used_at", "revoked"]

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if not change:
            key, secret = company_api_key_create(
                company=obj.company,
                name=obj.name,
                expiry_date=obj.expiry_date,
                actor=Actor.of_user(request.user),
            )
            # The admin goes on with ``obj`` (its log entry, the redirect): make it the new key.
            obj.pk, obj._state.adding = key.pk, False
            obj.refresh_from_db()
            self.message_user(
                request,
                f"The API key for {obj.company} is: {secret} — copy it now, it will not be shown again.",
                messages.WARNING,
            )
            return
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        admin.ModelAdmin.save_related(self, request, form, formsets, change)
        if not change:
            return  # the service audited the creation
        obj = form.instance
        changes = diff(getattr(request, "_audit_before", {}), snapshot(obj, exclude=self.audit_exclude))
        if change and not changes:
            return
        audit_record(
            action=self._action_name("change" if change else "add"),
            actor=Actor.of_user(request.user),
            target=key_target(obj),
            company=obj.company,
            details={"changes": changes},
        )

    @admin.action(description="Revoke selected keys (cannot be undone)")
    def revoke_keys(self, request, queryset):
        actor = Actor.of_user(request.user)
        revoked = sum(
            company_api_key_revoke(key=key, actor=actor) for key in queryset.select_related("company")
        )
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)
