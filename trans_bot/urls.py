from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.forms import ResetPasswordForm
from trans_bot.health import HealthzView
from trans_bot.views import business_targets_page

# Tried in order: the product backend's calls (ingest, the entitlement check) come first.
api_v1 = [
    path("", include("usage.urls")),
    path("", include("accounts.urls")),
    path("", include("regions.urls")),
    path("", include("billing.urls")),
    path("", include("billing.plans.urls")),
    path("", include("growth.urls")),
]

def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on every site: no icon, and no 404 in the log."""
    response = HttpResponse(status=204)
    response["Cache-Control"] = "public, max-age=86400"
    return response


urlpatterns = [
    path("healthz", HealthzView.as_view(), name="healthz"),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("favicon.ico", favicon),
    # Companies, members and API keys moved from billing to accounts: old bookmarks still land.
    re_path(
        r"^admin/billing/(?P<rest>(?:company|membership|companyapikey)/.*)$",
        RedirectView.as_view(url="/admin/accounts/%(rest)s", permanent=True, query_string=True),
    ),
    path("admin/targets/", admin.site.admin_view(business_targets_page), name="business-targets"),
    path("admin/", admin.site.urls),
    # Where the password reset e-mail's link lands (the API's confirm takes the same uid and token).
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(form_class=ResetPasswordForm),
        name="password_reset_confirm",
    ),
    path("reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # The account pages, the sign-in page, the public calculator and "/".
    path("", include("customers.urls")),
]
