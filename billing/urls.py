from django.urls import path

from billing.stripe.api import PortalView, UpgradeView
from billing.stripe.views import stripe_webhook

urlpatterns: list = [
    path("billing/upgrade/", UpgradeView.as_view(), name="billing-upgrade"),
    path("billing/portal/", PortalView.as_view(), name="billing-portal"),
    path("billing/stripe/webhook/", stripe_webhook, name="stripe-webhook"),
]
