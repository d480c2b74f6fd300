from django.urls import path

from regions.api import FailoverView, RegionsStatusView

urlpatterns = [
    path("regions/", RegionsStatusView.as_view(), name="regions-status"),
    path("regions/failover/", FailoverView.as_view(), name="regions-failover"),
]
