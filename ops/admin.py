"""Admin for the ops spine: the ops task queue (where ops work) and the alert outbox
(read-only: what was sent, what failed and why). Status changes go through services,
which audit them."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from audit.admin_mixins import AuditedModelAdmin
from audit.services import Actor
from core.admin_helpers import ReadOnlyAdmin, short_text, short_time, status_pill
from ops import delivery, selectors, services
from ops.models import ACTIVE_TASK_STATUSES, Notification, NotificationStatus, OpsTask, TaskStatus

STATUS_COLOURS = {
    NotificationStatus.PENDING: "#b26a00",
    NotificationStatus.SENDING: "#0a58ca",
    NotificationStatus.SENT: "#1e7e34",
    NotificationStatus.FAILED: "#c62828",
    NotificationStatus.FOLDED: "#6c757d",
    TaskStatus.OPEN: "#c62828",
    TaskStatus.ACKNOWLEDGED: "#b26a00",
    TaskStatus.RESOLVED: "#1e7e34",
    TaskStatus.DISMISSED: "#6c757d",
}
CHANNEL_WORDS = {"none": "–", "pending": "pending", "sent": "sent", "off": "off", "failed": "failed"}
SEVERITY_COLOURS = {"critical": "#c62828", "high": "#d9480f", "warning": "#b26a00", "medium": "#b26a00"}


class NoteForm(forms.Form):
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        help_text="What was done, or why nothing needs doing. Stored on the task and in the audit trail.",
    )


class OptionalNoteForm(forms.Form):
    note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Optional: what you are about to do. Kept in the task's audit history.",
    )


@dataclass(frozen=True)
class TaskButton:
    """One button on a task's page: its note page, and the service it calls."""

    verb: str  # in the URL
    label: str
    done: str  # "acknowledged"
    allowed_from: tuple[str, ...]
    note_required: bool


TASK_BUTTONS = (
    TaskButton("acknowledge", "Acknowledge", "acknowledged", (TaskStatus.OPEN,), False),
    TaskButton("assign-to-me", "Assign to me", "assigned to you", ACTIVE_TASK_STATUSES, False),
    TaskButton("resolve", "Resolve", "resolved", ACTIVE_TASK_STATUSES, True),
    TaskButton("dismiss", "Dismiss", "dismissed", ACTIVE_TASK_STATUSES, True),
)


@admin.register(OpsTask)
class OpsTaskAdmin(AuditedModelAdmin):
    list_display = (
        "task_title", "kind", "severity_badge", "status_badge", "company", "assignee", "due", "created",
    )
    list_display_links = ("task_title",)
    change_form_template = "admin/ops/opstask/change_form.html"
    list_filter = ("status", "kind", "severity", "assignee", "company")
    search_fields = ("title", "details", "kind", "dedup_key", "company__name")
    list_select_related = ("company", "assignee")
    date_hierarchy = "created_at"
    actions = ("acknowledge", "assign_to_me", "resolve_with_note", "dismiss_with_note")
    fieldsets = (
        (None, {"fields": ("title", "kind", "severity", "status", "details")}),
        ("Where", {"fields": ("company", "target_link")}),
        ("Work", {"fields": ("assignee", "due_at", "resolution_note")}),
        ("History", {"fields": ("created_at", "acknowledged_at", "closed_at", "dedup_key", "audit_history")}),
    )
    readonly_fields = (
        "title", "kind", "status", "details", "company", "target_link", "resolution_note",
        "created_at", "acknowledged_at", "closed_at", "dedup_key", "audit_history",
    )
    raw_id_fields = ("assignee",)

    def has_add_permission(self, request):
        return False  # tasks are opened by the jobs that find the problem

    def has_delete_permission(self, request, obj=None):
        return False  # a task is closed (resolved or dismissed, with a note), never deleted

    @admin.display(description="title", ordering="title")
    def task_title(self, obj):
        return short_text(obj.title, 55)

    @admin.display(description="due", ordering="due_at")
    def due(self, obj):
        return short_time(obj.due_at)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return short_time(obj.created_at)

    def buttons_for(self, request, task: OpsTask) -> list[TaskButton]:
        if not self.has_change_permission(request, task):
            return []
        return [
            button
            for button in TASK_BUTTONS
            if task.status in button.allowed_from
            and not (button.verb == "assign-to-me" and task.assignee_id == request.user.pk)
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        task = self.get_object(request, unquote(object_id))
        buttons = []
        if task is not None:
            buttons = [
                (button, reverse(f"admin:ops_opstask_{button.verb.replace('-', '_')}", args=[task.pk]))
                for button in self.buttons_for(request, task)
            ]
        extra = {"task_buttons": buttons}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})

    def get_urls(self):
        return [
            *(
                path(
                    f"<path:object_id>/{button.verb}/",
                    self.admin_site.admin_view(self.task_action_view),
                    {"verb": button.verb},
                    name=f"ops_opstask_{button.verb.replace('-', '_')}",
                )
                for button in TASK_BUTTONS
            ),
            *super().get_urls(),
        ]

    def task_action_view(self, request, object_id, verb):
        """A task page's button: its note page (GET), then the ops service (POST)."""
        button = next((b for b in TASK_BUTTONS if b.verb == verb), None)
        task = self.get_object(request, unquote(object_id))
        if button is None or task is None:
            raise Http404("No such task or action.")
        if not self.has_change_permission(request, task):
            raise PermissionDenied
        page = reverse("admin:ops_opstask_change", args=[task.pk])
        form_class = NoteForm if button.note_required else OptionalNoteForm
        form = form_class(request.POST if request.method == "POST" else None)
        if form.is_valid():
            note = form.cleaned_data["note"].strip()
            actor = Actor.of_user(request.user)
            if button.verb == "acknowledge":
                changed = services.ops_task_acknowledge(task=task, actor=actor, note=note)
            elif button.verb == "assign-to-me":
                changed = services.ops_task_assign(task=task, assignee=request.user, actor=actor, note=note)
            elif button.verb == "resolve":
                changed = services.ops_task_resolve(task=task, note=note, actor=actor)
            else:
                changed = services.ops_task_dismiss(task=task, note=note, actor=actor)
            if changed:
                self.message_user(request, f"Task {button.done}: {task.title}", messages.SUCCESS)
            else:
                self.message_user(
                    request,
                    f"Not {button.done}: the task is {task.get_status_display().lower()} now (someone else acted).",
                    messages.WARNING,
                )
            return HttpResponseRedirect(page)
        return TemplateResponse(
            request,
            "admin/ops/opstask/task_action.html",
            {
                **self.admin_site.each_context(request),
                "title": f"{button.label}: {Truncator(task.title).chars(80)}",
                "opts": self.model._meta,
                "task": task,
                "button": button,
                "form": form,
                "task_page": page,
            },
        )

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, obj):
        return status_pill(obj.get_severity_display(), SEVERITY_COLOURS.get(obj.severity, "#6c757d"))

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return status_pill(obj.get_status_display(), STATUS_COLOURS.get(obj.status, "#6c757d"))

    @admin.display(description="target")
    def target_link(self, obj):
        if obj.target_content_type is None:
            return "—"
        model = obj.target_content_type.model_class()
        target = obj.target
        if target is not None:
            label = str(target)
        else:
            label = f"{obj.target_content_type} #{obj.target_object_id} (gone)"
        if model is None or target is None:
            return label
        try:
            url = reverse(
                f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.target_object_id]
            )
        except NoReverseMatch:
            return label
        return format_html('<a href="{}">{}: {}</a>', url, model._meta.verbose_name, label)

    @admin.display(description="audit history")
    def audit_history(self, obj):
        rows = list(selectors.task_audit_history(task=obj))
        if not rows:
            return "—"
        body = format_html_join(
            "",
            "<tr><td>#{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    log.seq,
                    log.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                    log.action,
                    log.actor_label,
                    Truncator(log.details.get("note") or _changes_text(log.details)).chars(200),
                )
                for log in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>seq</th><th>when</th><th>action</th><th>who</th><th>details</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            body,
        )

    def _each(self, request, queryset, change, verb: str) -> None:
        actor = Actor.of_user(request.user)
        done = sum(1 for task in queryset if change(task, actor))
        skipped = queryset.count() - done
        self.message_user(request, f"{done} task(s) {verb}." + (
            f" {skipped} skipped (already in a state that does not allow it)." if skipped else ""
        ), messages.SUCCESS if done else messages.WARNING)

    @admin.action(description="Acknowledge selected tasks", permissions=["change"])
    def acknowledge(self, request, queryset):
        self._each(
            request, queryset, lambda t, a: services.ops_task_acknowledge(task=t, actor=a), "acknowledged"
        )

    @admin.action(description="Assign selected tasks to me", permissions=["change"])
    def assign_to_me(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda t, a: services.ops_task_assign(task=t, assignee=request.user, actor=a),
            f"assigned to {request.user.get_username()}",
        )

    @admin.action(description="Resolve selected tasks (with a note)", permissions=["change"])
    def resolve_with_note(self, request, queryset):
        return self._with_note(
            request, queryset, services.ops_task_resolve, "resolve_with_note", "resolved", "Resolve"
        )

    @admin.action(description="Dismiss selected tasks (with a note)", permissions=["change"])
    def dismiss_with_note(self, request, queryset):
        return self._with_note(
            request, queryset, services.ops_task_dismiss, "dismiss_with_note", "dismissed", "Dismiss"
        )

    def _with_note(self, request, queryset, change, action: str, verb: str, label: str):
        """An intermediate page asks for the note; posting it applies the change."""
        form = NoteForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            note = form.cleaned_data["note"]
            self._each(request, queryset, lambda t, a: change(task=t, note=note, actor=a), verb)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"{label} {queryset.count()} task(s)",
            "opts": self.model._meta,
            "queryset": queryset,
            "form": form,
            "action": action,
            "verb": verb,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/ops/opstask/note_action.html", context)


def _changes_text(details: dict) -> str:
    changes = details.get("changes") or {}
    return ", ".join(f"{k}: {v.get('before')} → {v.get('after')}" for k, v in changes.items()) or str(
        details.get("status", "")
    )


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    """Read-only: the outbox is the delivery record. "Retry now" is the one thing ops do."""

    list_display = (
        "short_title", "created", "kind", "severity", "status_badge", "channels", "tries", "short_error",
    )
    list_display_links = ("short_title",)
    list_filter = ("status", "kind", "severity", "slack_status", "email_status", "is_summary")
    search_fields = ("title", "text", "kind", "dedup_key", "last_error")
    list_select_related = ("company",)
    date_hierarchy = "created_at"
    actions = ("retry_now",)
    fieldsets = (
        (None, {"fields": ("kind", "severity", "title", "text", "fields", "link", "company")}),
        ("Delivery", {"fields": (
            "status", "attempts", "last_error", "next_attempt_at", "give_up_at", "claimed_at", "sent_at",
            "slack_status", "email_status", "email_to",
        )}),
        ("Dedup and storms", {"fields": ("dedup_key", "is_summary", "folded_into", "created_at")}),
    )
    readonly_fields = flatten_fieldsets(fieldsets)

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET" and not delivery.slack_is_configured():
            self.message_user(
                request,
                "Slack is off: SLACK_WEBHOOK_URL is empty, so alerts go by e-mail only "
                "(their Slack status reads 'Off'). Set it and run 'manage.py notify_test'.",
                messages.WARNING,
            )
        return super().changelist_view(request, extra_context)

    @admin.display(description="title", ordering="title")
    def short_title(self, obj):
        return short_text(obj.title, 45)

    @admin.display(description="last error")
    def short_error(self, obj):
        return short_text(obj.last_error, 25)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return short_time(obj.created_at)

    @admin.display(description="tries", ordering="attempts")
    def tries(self, obj):
        if obj.status != NotificationStatus.PENDING or not obj.attempts or obj.next_attempt_at is None:
            return obj.attempts
        when = timezone.localtime(obj.next_attempt_at)
        return format_html(
            '<span style="white-space:nowrap" title="next try {}">{}, next {}</span>',
            f"{when:%Y-%m-%d %H:%M:%S %Z}",
            obj.attempts,
            f"{when:%H:%M}",
        )

    @admin.display(description="Slack · e-mail")
    def channels(self, obj):
        return format_html(
            '<span style="white-space:nowrap" title="Slack: {} · e-mail: {}">{} · {}</span>',
            obj.get_slack_status_display(),
            obj.get_email_status_display(),
            CHANNEL_WORDS.get(obj.slack_status, obj.slack_status),
            CHANNEL_WORDS.get(obj.email_status, obj.email_status),
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return status_pill(obj.get_status_display(), STATUS_COLOURS.get(obj.status, "#6c757d"))

    def has_retry_permission(self, request) -> bool:
        # The outbox is read-only for everyone; retrying is for who may change alerts.
        return request.user.has_perm("ops.change_notification")

    @admin.action(description="Retry now (pending or failed alerts)", permissions=["retry"])
    def retry_now(self, request, queryset):
        actor = Actor.of_user(request.user)
        done = sum(1 for n in queryset if delivery.notification_retry_now(notification=n, actor=actor))
        skipped = queryset.count() - done
        self.message_user(
            request,
            f"{done} alert(s) queued for delivery now."
            + (f" {skipped} skipped (already sent, sending or folded)." if skipped else ""),
            messages.SUCCESS if done else messages.WARNING,
        )
