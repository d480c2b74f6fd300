from django.urls import path

from growth.api import ExposuresView

urlpatterns = [
    path("experiments/exposures/", ExposuresView.as_view(), name="experiment-exposures"),
]
