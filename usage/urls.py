from django.urls import path

from usage.api import PlansView, UsageEventsView, UsageSummaryView
from usage.entitlements_api import EntitlementCheckView, EntitlementsView

urlpatterns = [
    path("usage/events/", UsageEventsView.as_view(), name="usage-events"),
    path("usage/summary/", UsageSummaryView.as_view(), name="usage-summary"),
    path("plans/", PlansView.as_view(), name="plans"),
    path("entitlements/", EntitlementsView.as_view(), name="entitlements"),
    path("entitlements/check/", EntitlementCheckView.as_view(), name="entitlements-check"),
]
