"""Password reset by e-mail, with Django's tokens: the link carries the user's id and a
token that is valid for ``PASSWORD_RESET_TIMEOUT`` seconds and dies with the password it
was made for (so it works once).

Asking for a reset answers the same whether the address belongs to anyone, and the e-mail
is sent by a worker, so the answer also takes as long either way (an SMTP round trip on the
request would tell).
"""

from __future__ import annotations

import logging
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from accounts.throttles import password_reset_counted, sign_in_failures_clear
from audit.services import Actor, audit_record
from core.links import absolute_url
from core.queue import enqueue

logger = logging.getLogger(__name__)


def password_reset_request(*, email: str, ip: str | None) -> None:
    """Queue a reset e-mail to every account that may reset with this address (Django's
    rule: active, with a usable password, the address matching case-insensitively).
    Nothing happens for an unknown address. Raises ``ResetLimited`` after too many
    requests for this address or from this client (``accounts.throttles``), known
    address or not."""
    password_reset_counted(ip=ip, email=email)
    for user in PasswordResetForm().get_users(email):
        transaction.on_commit(partial(_enqueue_send, user.pk))


def _enqueue_send(user_id: int) -> None:
    try:
        enqueue("accounts.send_password_reset", user_id)
    except Exception:  # broker down: the answer was already given; the user can ask again
        logger.warning("could not queue the password reset e-mail for user #%s", user_id, exc_info=True)


def password_reset_link(user: User) -> str:
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return absolute_url(reverse("password_reset_confirm", kwargs={"uidb64": uidb64, "token": token}))


def password_reset_send(*, user_id: int) -> bool:
    """Send the reset e-mail (the worker's half). False when the account can no longer
    reset (deactivated, or its password made unusable, since it asked)."""
    user = get_user_model()._default_manager.filter(pk=user_id, is_active=True).first()
    address = getattr(user, user.get_email_field_name(), "") if user is not None else ""
    if user is None or not user.has_usable_password() or not address:
        return False
    hours = settings.PASSWORD_RESET_TIMEOUT // 3600
    send_mail(
        subject="Reset your Trans Bot password",
        message=(
            f"Someone asked to reset the password of the Trans Bot account {user.get_username()!r}.\n\n"
            f"If it was you, choose a new password here. The link works once, for {hours} hours:\n\n"
            f"{password_reset_link(user)}\n\n"
            "If it was not you, ignore this e-mail: your password stays as it is.\n"
        ),
        from_email=None,
        recipient_list=[address],
    )
    audit_record(action="auth.user.password_reset_sent", actor=Actor.system("password reset"), target=user)
    return True


def password_reset_user(*, uidb64: str, token: str) -> User | None:
    """The user a reset link is for, or None when the link is malformed, unknown or spent."""
    try:
        pk = urlsafe_base64_decode(uidb64).decode()
        user = get_user_model()._default_manager.get(pk=pk)
    except (TypeError, ValueError, OverflowError, ValidationError, get_user_model().DoesNotExist):
        return None
    return user if default_token_generator.check_token(user, token) else None


def password_reset_complete(*, user: User, new_password: str) -> None:
    """Set the new password, after Django's password validators (``ValidationError``
    otherwise). Every session of the user ends (their session hash changes), the link dies
    with the old password, and the username's failed sign-ins are forgotten: whoever holds
    the mailbox has proved who they are.

    Audited here as ``auth.user.password_reset``. The save names its field, which the
    password-change signal leaves alone, so the trail has this one record, not also a
    "password_change" by nobody."""
    validate_password(new_password, user)
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        audit_record(
            action="auth.user.password_reset",
            actor=Actor.of_user(user),
            target=user,
            details={"via": "e-mail link"},
        )
    sign_in_failures_clear(username=user.get_username())
