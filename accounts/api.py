"""Signing in from the frontend: a session cookie, CSRF-protected (the README's "Signing in
from the frontend" walks through it).

    GET  /api/v1/auth/csrf/                     the CSRF cookie, and its token to send back
    POST /api/v1/auth/login/                    {"username", "password"}
    POST /api/v1/auth/logout/
    POST /api/v1/auth/password-reset/           {"email"}: always 202
    POST /api/v1/auth/password-reset/confirm/   {"uid", "token", "new_password"}
    GET  /api/v1/me/                            the user, their companies and role in each

Every POST here needs the CSRF token in ``X-CSRFToken``, signed in or not: a forged
sign-in would put the victim in the attacker's account.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import CSRFCheck, SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import ErrorDetail, PermissionDenied, Throttled, ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Membership, MembershipRole
from accounts.password_reset import password_reset_complete, password_reset_request, password_reset_user
from accounts.signin import user_sign_in, user_sign_out
from accounts.throttles import ResetLimited, SignInLocked
from core.middleware import client_ip

INVALID_LOGIN = "The username and password do not match an account. Both are case-sensitive."

# --- Schemas ---------------------------------------------------------------------------


class ApiErrorField(serializers.Serializer):
    field = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class ApiError(serializers.Serializer):
    """The one error shape (core.errors)."""

    error = inline_serializer(
        "ApiErrorDetail",
        {  # a dict: "fields" cannot be a serializer class attribute
            "status": serializers.IntegerField(),
            "code": serializers.CharField(),
            "message": serializers.CharField(),
            "fields": ApiErrorField(many=True),
        },
    )


class CsrfOut(serializers.Serializer):
    csrf_token = serializers.CharField(help_text="Send it back in the X-CSRFToken header of every POST.")


class LoginIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class TierOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class MembershipOut(serializers.Serializer):
    id = serializers.IntegerField(source="company.id")
    slug = serializers.CharField(source="company.slug")
    name = serializers.CharField(source="company.name")
    tier = TierOut(source="company.tier")
    role = serializers.ChoiceField(choices=MembershipRole.choices)


class UserOut(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField(allow_blank=True)
    first_name = serializers.CharField(allow_blank=True)
    last_name = serializers.CharField(allow_blank=True)
    is_staff = serializers.BooleanField()


class MeOut(serializers.Serializer):
    user = UserOut()
    companies = MembershipOut(many=True)


class SignedInOut(MeOut):
    csrf_token = serializers.CharField(help_text="Signing in rotates the CSRF token: use this one from now on.")


class DetailOut(serializers.Serializer):
    detail = serializers.CharField()


class PasswordResetIn(serializers.Serializer):
    email = serializers.EmailField()


class PasswordResetConfirmIn(serializers.Serializer):
    uid = serializers.CharField(max_length=64, help_text="The first part of the e-mailed link's path.")
    token = serializers.CharField(max_length=128, help_text="The second part of the e-mailed link's path.")
    new_password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


def _me(user) -> dict:
    memberships = Membership.objects.filter(user=user).select_related("company__tier").order_by("company__name")
    return MeOut({"user": user, "companies": memberships}).data


# --- Views -----------------------------------------------------------------------------


def _not_a_view(request: HttpRequest) -> HttpResponse:
    raise AssertionError("CSRFCheck is only asked for its verdict")


class CsrfProtectedView(APIView):
    """Unsafe methods need the CSRF cookie and its token, whoever is asking (DRF checks
    CSRF only for a signed-in session). Checked before authentication, so the refusal is
    always the same 403 ``csrf_failed``."""

    def perform_authentication(self, request):
        check = CSRFCheck(_not_a_view)
        check.process_request(request)  # reads the cookie into request.META["CSRF_COOKIE"]
        reason = check.process_view(request, _not_a_view, (), {})
        if reason:
            raise PermissionDenied(f"CSRF failed: {reason}", code="csrf_failed")
        super().perform_authentication(request)


_REFUSALS = {400: ApiError, 403: ApiError}


@method_decorator(never_cache, name="dispatch")
class CsrfView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: CsrfOut}, summary="Set the CSRF cookie and return its token", tags=["auth"])
    def get(self, request):
        return Response({"csrf_token": get_token(request._request)})


@method_decorator(never_cache, name="dispatch")
class LoginView(CsrfProtectedView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=LoginIn,
        responses={200: SignedInOut, 429: ApiError, **_REFUSALS},
        summary="Sign in (session cookie)",
        description=(
            "400 names `password` when the username and password do not match an active account "
            "(it never says whether the username exists). 429 after too many failures for the "
            "username or from the address; `Retry-After` says when to try again."
        ),
        tags=["auth"],
    )
    def post(self, request):
        data = LoginIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            user = user_sign_in(request=request._request, **data.validated_data)
        except SignInLocked as exc:
            raise Throttled(wait=exc.wait, detail="Too many failed sign-ins.")
        if user is None:
            raise ValidationError({"password": [ErrorDetail(INVALID_LOGIN, code="invalid_login")]})
        return Response({**_me(user), "csrf_token": get_token(request._request)})


@method_decorator(never_cache, name="dispatch")
class LogoutView(CsrfProtectedView):
    authentication_classes = [SessionAuthentication]
    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={204: None, 403: ApiError}, summary="Sign out", tags=["auth"])
    def post(self, request):
        user_sign_out(request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordResetView(CsrfProtectedView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=PasswordResetIn,
        responses={202: DetailOut, 429: ApiError, **_REFUSALS},
        summary="E-mail a password reset link",
        description=(
            "Always 202 for a well-formed address: the answer never says whether it belongs to anyone. "
            "429 after too many requests for the address or from the client (known address or not); "
            "`Retry-After` says when to ask again."
        ),
        tags=["auth"],
    )
    def post(self, request):
        data = PasswordResetIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            password_reset_request(email=data.validated_data["email"], ip=client_ip(request._request))
        except ResetLimited as exc:
            raise Throttled(wait=exc.wait, detail="Too many password reset requests.")
        return Response(
            {"detail": "If an account uses this address, a link to reset its password is on its way."},
            status=status.HTTP_202_ACCEPTED,
        )


class PasswordResetConfirmView(CsrfProtectedView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=PasswordResetConfirmIn,
        responses={200: DetailOut, **_REFUSALS},
        summary="Set a new password with the e-mailed link's uid and token",
        description=(
            "400 names `token` when the link is invalid, expired or already used, and "
            "`new_password` when Django's password validators refuse it."
        ),
        tags=["auth"],
    )
    def post(self, request):
        data = PasswordResetConfirmIn(data=request.data)
        data.is_valid(raise_exception=True)
        user = password_reset_user(uidb64=data.validated_data["uid"], token=data.validated_data["token"])
        if user is None:
            message = "This reset link is invalid, expired or already used: ask for a new one."
            raise ValidationError({"token": [ErrorDetail(message, code="invalid_link")]})
        try:
            password_reset_complete(user=user, new_password=data.validated_data["new_password"])
        except DjangoValidationError as exc:
            refusals = [ErrorDetail(" ".join(e.messages), code=e.code or "invalid") for e in exc.error_list]
            raise ValidationError({"new_password": refusals})
        return Response({"detail": "Your password has been changed. Sign in with the new one."})


@method_decorator(never_cache, name="dispatch")
class MeView(APIView):
    # Token first: an anonymous caller gets 401 with a WWW-Authenticate header, not 403.
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: MeOut, 401: ApiError}, summary="Who is signed in, their companies and roles", tags=["auth"]
    )
    def get(self, request):
        return Response(_me(request.user))
