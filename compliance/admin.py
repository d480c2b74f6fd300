from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html

from audit.services import Actor
from compliance.models import EvidencePack
from compliance.services import evidence_pack_download
from core.admin_helpers import ReadOnlyAdmin, short_time

DOWNLOAD_PERMISSION = "compliance.download_evidencepack"


@admin.register(EvidencePack)
class EvidencePackAdmin(ReadOnlyAdmin):
    """Stored packs, never edited. Downloading one needs its own permission and is audited."""

    list_display = ("period", "built", "created_by", "human_size", "short_sha256", "download")
    list_display_links = ("period",)
    search_fields = ("sha256", "filename")
    date_hierarchy = "first_day"
    fieldsets = (
        (None, {"fields": ("first_day", "last_day", "download")}),
        ("The zip", {"fields": ("filename", "human_size", "sha256", "created_at", "created_by")}),
    )
    readonly_fields = flatten_fieldsets(fieldsets)

    def get_queryset(self, request):
        return super().get_queryset(request).defer("file")

    def get_urls(self):
        return [
            path(
                "<int:pk>/download/",
                self.admin_site.admin_view(self.download_view),
                name="compliance_evidencepack_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request, pk):
        if not request.user.has_perm(DOWNLOAD_PERMISSION):
            raise PermissionDenied("Downloading evidence packs needs 'Can download SOC 2 evidence packs'.")
        pack = get_object_or_404(EvidencePack.objects.defer("file"), pk=pk)
        data = evidence_pack_download(pack=pack, actor=Actor.of_user(request.user))
        response = HttpResponse(data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{pack.filename}"'
        response["Content-Length"] = str(len(data))
        return response

    @admin.display(description="period", ordering="first_day")
    def period(self, obj):
        return f"{obj.first_day} – {obj.last_day}"

    @admin.display(description="built", ordering="created_at")
    def built(self, obj):
        return short_time(obj.created_at)

    @admin.display(description="size", ordering="size")
    def human_size(self, obj):
        return filesizeformat(obj.size)

    @admin.display(description="SHA-256")
    def short_sha256(self, obj):
        return format_html('<code title="{}">{}…</code>', obj.sha256, obj.sha256[:12])

    @admin.display(description="zip")
    def download(self, obj):
        return format_html(
            '<a href="{}">Download</a>', reverse("admin:compliance_evidencepack_download", args=[obj.pk])
        )

    # Who may not download sees no link (the view refuses them anyway).
    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return shown if request.user.has_perm(DOWNLOAD_PERMISSION) else tuple(f for f in shown if f != "download")

    def get_fieldsets(self, request, obj=None):
        if request.user.has_perm(DOWNLOAD_PERMISSION):
            return self.fieldsets
        return tuple(
            (name, {**opts, "fields": tuple(f for f in opts["fields"] if f != "download")})
            for name, opts in self.fieldsets
        )
