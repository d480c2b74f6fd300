from django.urls import path

from usage.api import PlansView, UsageEventsView, UsageSummaryView

urlpatterns = [
    path("usage/events/", UsageEventsView.as_view(), name="usage-events"),
    path("usage/summary/", UsageSummaryView.as_view(), name="usage-summary"),
    path("plans/", PlansView.as_view(), name="plans"),
]
