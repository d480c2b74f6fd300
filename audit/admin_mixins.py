"""Audit every change made through the admin, with before and after values.

Mix ``AuditedAdminMixin`` into a ModelAdmin. The admin wraps a change form in one
transaction, so the change and its audit record commit together. Many-to-many fields
(a user's groups and permissions) are saved after the object, so "after" is taken once
the related objects are saved.
"""

from __future__ import annotations

from collections.abc import Set
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db import models

from audit.services import SECRET_FIELDS, Actor, audit_record, json_safe


def snapshot(obj: models.Model | None, *, exclude: Set[str] = frozenset()) -> dict[str, Any]:
    if obj is None or obj.pk is None:
        return {}
    data: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.name in exclude:
            continue
        value = field.value_from_object(obj)
        data[field.name] = "<redacted>" if field.name in SECRET_FIELDS and value else value
    for field in obj._meta.many_to_many:
        if field.name not in exclude:
            data[field.name] = sorted(str(o) for o in getattr(obj, field.name).all())
    return json_safe(data)


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    changed = {}
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            changed[name] = {"before": before.get(name), "after": after.get(name)}
    return changed


if TYPE_CHECKING:
    # The mixins are only ever mixed into ModelAdmins: let the type checker see ``model`` and the super() hooks.
    _AdminBase = admin.ModelAdmin[Any]
else:
    _AdminBase = object


class AuditedAdminMixin(_AdminBase):
    audit_exclude: set[str] = {"last_login"}

    def audit_company(self, obj: models.Model) -> models.Model | None:
        """The tenant a record belongs to, for the trail's company columns. The audit app
        knows no app: by default, the object's ``company`` if it has one; a tenant's own
        admin returns the object itself."""
        company = getattr(obj, "company", None)
        return company if isinstance(company, models.Model) else None

    def _action_name(self, verb: str) -> str:
        return f"admin.{self.model._meta.label_lower}.{verb}"

    def save_model(self, request, obj, form, change):
        before = {}
        if change and obj.pk is not None:
            stored = type(obj)._default_manager.filter(pk=obj.pk).first()
            before = snapshot(stored, exclude=self.audit_exclude)
        request._audit_before = before
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        before = getattr(request, "_audit_before", {})
        after = snapshot(obj, exclude=self.audit_exclude)
        changes = diff(before, after)
        if change and not changes:
            return
        audit_record(
            action=self._action_name("change" if change else "add"),
            actor=Actor.of_user(request.user),
            target=obj,
            company=self.audit_company(obj),
            details={"changes": changes},
        )

    def delete_model(self, request, obj):
        self._audit_delete(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self._audit_delete(request, obj)
        super().delete_queryset(request, queryset)

    def _audit_delete(self, request, obj):
        audit_record(
            action=self._action_name("delete"),
            actor=Actor.of_user(request.user),
            target=obj,
            company=self.audit_company(obj),
            details={"before": snapshot(obj, exclude=self.audit_exclude)},
        )


class AuditedModelAdmin(AuditedAdminMixin, admin.ModelAdmin):
    pass


class AuditedInlinesMixin(AuditedAdminMixin):
    """Also audit rows added, changed or deleted through inlines."""

    def save_formset(self, request, form, formset, change):
        model = formset.model
        pks = [f.instance.pk for f in formset.forms if f.instance.pk is not None]
        before = {obj.pk: snapshot(obj) for obj in model._default_manager.filter(pk__in=pks)}
        super().save_formset(request, form, formset, change)
        actor = Actor.of_user(request.user)
        company = self.audit_company(form.instance)
        name = model._meta.label_lower
        for obj in formset.new_objects:
            audit_record(
                action=f"admin.{name}.add",
                actor=actor,
                target=obj,
                company=company,
                details={"changes": diff({}, snapshot(obj))},
            )
        for obj, _fields in formset.changed_objects:
            changes = diff(before.get(obj.pk, {}), snapshot(obj))
            if changes:
                audit_record(
                    action=f"admin.{name}.change",
                    actor=actor,
                    target=obj,
                    company=company,
                    details={"changes": changes},
                )
        for obj in formset.deleted_objects:
            audit_record(
                action=f"admin.{name}.delete",
                actor=actor,
                target=obj,
                company=company,
                details={"before": before.get(obj.pk, {})},
            )
