from django.urls import path

from billing.plans.api import QuoteView

urlpatterns = [
    path("plans/quote/", QuoteView.as_view(), name="plans-quote"),
]
