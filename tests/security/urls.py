"""A view that forgets to filter by company: what row-level security is there for."""

from django.urls import path
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import CompanyAPIKeyAuthentication
from usage.models import UsageEvent


class EveryEventView(APIView):
    authentication_classes = [CompanyAPIKeyAuthentication, SessionAuthentication, TokenAuthentication]
    permission_classes = [AllowAny]

    def get(self, request):
        events = UsageEvent.objects.all()  # no company filter: the bug RLS backs up
        return Response({"companies": sorted({e.company_id for e in events}), "count": len(events)})


urlpatterns = [path("every-event/", EveryEventView.as_view())]
