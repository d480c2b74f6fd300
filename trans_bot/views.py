"""Admin pages of the composition root that are not the dashboard itself."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from trans_bot.targets import business_targets

# The targets read billing records: whoever may view them may see the figures.
TARGETS_PERMISSION = "billing.view_billingevent"


def business_targets_page(request):
    if not request.user.has_perm(TARGETS_PERMISSION):
        raise PermissionDenied
    context = {
        **admin.site.each_context(request),
        "title": "Business targets",
        "figures": business_targets(),
    }
    return TemplateResponse(request, "admin/business_targets.html", context)
