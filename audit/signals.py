"""Logins, logouts, failed logins and password changes go to the audit trail.

These are Django's own flows (the admin login, "change password", ``changepassword``),
which have no service of ours to write the record, so signals it is. A password change
is caught on the user model, whichever way it is made.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from audit.services import Actor, Target, audit_record
from core import context


@receiver(user_logged_in, dispatch_uid="audit_login")
def _logged_in(sender, request, user, **kwargs):
    audit_record(action="auth.login", actor=Actor.of_user(user), target=user)


@receiver(user_logged_out, dispatch_uid="audit_logout")
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(action="auth.logout", actor=Actor.of_user(user), target=user)


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    audit_record(
        action="auth.login_failed",
        actor=Actor.external(username or "unknown"),
        target=Target(type="auth.user", repr=username),
    )


def _acting_user():
    request = context.current().request
    user = getattr(request, "user", None) if request is not None else None
    return user if user is not None and user.is_authenticated else None


@receiver(pre_save, sender=get_user_model(), dispatch_uid="audit_password_before")
def _password_before(sender, instance, raw=False, update_fields=None, **kwargs):
    # Partial saves are Django's own bookkeeping (last_login; re-hashing the same password
    # with a stronger hasher at login), or a service that audits its own password change
    # (accounts' password reset): skip them, and their query.
    if raw or instance.pk is None or update_fields is not None:
        return
    stored = sender._default_manager.filter(pk=instance.pk).values_list("password", flat=True).first()
    instance._audit_password_changed = stored is not None and stored != instance.password


@receiver(post_save, sender=get_user_model(), dispatch_uid="audit_password_after")
def _password_after(sender, instance, created, raw=False, **kwargs):
    if raw or created or not getattr(instance, "_audit_password_changed", False):
        return
    instance._audit_password_changed = False
    acting = _acting_user()
    audit_record(
        action="auth.user.password_change",
        actor=Actor.of_user(acting) if acting is not None else Actor.system("manage.py"),
        target=instance,
        details={"own": acting is not None and acting.pk == instance.pk},
    )
