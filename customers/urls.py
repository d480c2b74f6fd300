from django.contrib.auth.views import LogoutView
from django.urls import path

from customers import views

app_name = "customers"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.AccountLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(next_page="customers:login"), name="logout"),
    path("pricing/", views.pricing, name="pricing"),
    path("account/", views.usage, name="usage"),
    path("account/plans/", views.plans, name="plans"),
    path("account/plans/change/", views.plan_change, name="plan_change"),
    path("account/billing-portal/", views.billing_portal, name="billing_portal"),
    path("account/history/", views.history, name="history"),
    path("account/history.csv", views.history_csv, name="history_csv"),
    path("account/alerts/", views.usage_alerts, name="usage_alerts"),
    path("account/api-keys/", views.api_keys, name="api_keys"),
    path("account/api-keys/<str:prefix>/revoke/", views.api_key_revoke, name="api_key_revoke"),
]
