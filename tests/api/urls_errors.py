"""A throwaway API under /api/v1/ to exercise the error contract in isolation."""

from django.urls import include, path
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApplicationError, Conflict, ErrorKind


class Item(serializers.Serializer):
    quantity = serializers.IntegerField(min_value=1)


class Batch(serializers.Serializer):
    events = Item(many=True)


class BatchView(APIView):
    def post(self, request):
        Batch(data=request.data).is_valid(raise_exception=True)
        return Response({"ok": True})


class ConflictView(APIView):
    def post(self, request):
        raise Conflict("key k-1 was used with different content", field="events.0.idempotency_key")


class KindView(APIView):
    """Raises an ``ApplicationError`` of the kind in the URL, blaming ``field`` if posted."""

    def post(self, request, kind):
        raise ApplicationError("It went wrong.", kind=ErrorKind(kind), field=request.data.get("field"))


urlpatterns = [
    path(
        "api/v1/",
        include(
            [
                path("batch/", BatchView.as_view()),
                path("conflict/", ConflictView.as_view()),
                path("kind/<str:kind>/", KindView.as_view()),
            ]
        ),
    ),
    path("", include("trans_bot.urls")),
]
