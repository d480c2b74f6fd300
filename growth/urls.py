from django.urls import path

from growth.api import BookingsView, ExposuresView

urlpatterns = [
    path("experiments/exposures/", ExposuresView.as_view(), name="experiment-exposures"),
    path("bookings/", BookingsView.as_view(), name="bookings"),
]
