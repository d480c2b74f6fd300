"""Access changes and logins made through the admin land in the audit trail."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from audit.models import AuditLog

pytestmark = pytest.mark.django_db


def test_changing_a_users_groups_and_permissions_is_audited_with_before_and_after(ops_client, staff_user):
    billing_ops = Group.objects.create(name="billing-ops")
    perm = Permission.objects.get(codename="view_auditlog")
    url = reverse("admin:auth_user_change", args=[staff_user.pk])
    response = ops_client.post(
        url,
        {
            "username": staff_user.username,
            "email": staff_user.email,
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "groups": [billing_ops.pk],
            "user_permissions": [perm.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    log = AuditLog.objects.get(action="admin.auth.user.change")
    assert log.actor_label == "olivia"
    assert log.target_id == str(staff_user.pk)
    changes = log.details["changes"]
    assert changes["is_superuser"] == {"before": False, "after": True}
    assert changes["groups"] == {"before": [], "after": ["billing-ops"]}
    assert changes["user_permissions"]["after"] == [str(perm)]
    assert "password" not in changes
    assert log.request_id and log.ip == "127.0.0.1"


def test_deleting_a_group_is_audited(ops_client):
    group = Group.objects.create(name="contractors")
    response = ops_client.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})
    assert response.status_code == 302
    log = AuditLog.objects.get(action="admin.auth.group.delete")
    assert log.details["before"]["name"] == "contractors"


def test_an_admin_login_and_a_failed_login_are_audited(client, ops_user):
    login = reverse("admin:login")
    client.post(login, {"username": "olivia", "password": "wrong"})
    client.post(login, {"username": "olivia", "password": "pw-olivia-123"})
    failed = AuditLog.objects.get(action="auth.login_failed")
    assert failed.actor_type == "external" and failed.target_repr == "olivia"
    ok = AuditLog.objects.get(action="auth.login")
    assert ok.actor_label == "olivia" and ok.actor_user_id == ops_user.pk


def test_a_refused_admin_login_with_a_right_password_is_audited(client, outsider, django_user_model):
    """Django signals nothing when the password is right but the person is no staff."""
    login = reverse("admin:login")
    response = client.post(login, {"username": "oscar", "password": "pw-oscar-123"})
    assert response.status_code == 200 and "staff account" in response.content.decode()
    failed = AuditLog.objects.get(action="auth.login_failed")
    assert failed.actor_type == "external" and failed.actor_label == "oscar"
    assert failed.target_repr == "oscar" and failed.target_id == str(outsider.pk)
    assert failed.details == {"reason": "not a staff account", "where": "admin"}
    assert not AuditLog.objects.filter(action="auth.login").exists()

    django_user_model.objects.filter(pk=outsider.pk).update(is_staff=True, is_active=False)
    client.post(login, {"username": "oscar", "password": "pw-oscar-123"})
    assert AuditLog.objects.filter(action="auth.login_failed").count() == 2


def test_the_audit_admin_is_read_only_even_for_superusers(ops_client):
    from audit.services import Actor, audit_record

    log = audit_record(action="a.one", actor=Actor.system("t"), details={"k": "v"})
    assert ops_client.get(reverse("admin:audit_auditlog_add")).status_code == 403
    assert ops_client.post(reverse("admin:audit_auditlog_delete", args=[log.pk]), {"post": "yes"}).status_code == 403
    page = ops_client.get(reverse("admin:audit_auditlog_change", args=[log.pk]))
    assert page.status_code == 200
    assert log.hash in page.content.decode()
    ops_client.post(reverse("admin:audit_auditlog_change", args=[log.pk]), {"action": "a.forged"})
    assert AuditLog.objects.get(pk=log.pk).action == "a.one"
    listing = ops_client.get(reverse("admin:audit_auditlog_changelist"), {"action": "a.one"})
    assert listing.status_code == 200 and "a.one" in listing.content.decode()


def test_saving_a_form_without_changes_writes_no_change_record(ops_client):
    group = Group.objects.create(name="night-shift")
    url = reverse("admin:auth_group_change", args=[group.pk])
    assert ops_client.post(url, {"name": "night-shift"}).status_code == 302
    assert not AuditLog.objects.filter(action="admin.auth.group.change").exists()
    assert ops_client.post(url, {"name": "day-shift"}).status_code == 302
    log = AuditLog.objects.get(action="admin.auth.group.change")
    assert log.details["changes"] == {"name": {"before": "night-shift", "after": "day-shift"}}


def test_creating_an_api_token_in_admin_is_audited_without_the_token(ops_client, staff_user):
    from rest_framework.authtoken.models import Token

    response = ops_client.post(reverse("admin:authtoken_tokenproxy_add"), {"user": staff_user.pk})
    assert response.status_code == 302, response.content[:2000]
    key = Token.objects.get(user=staff_user).key
    log = AuditLog.objects.get(action="admin.authtoken.tokenproxy.add")
    assert log.actor_label == "olivia"
    assert log.details["changes"]["user"] == {"before": None, "after": staff_user.pk}
    assert key not in str(log.details) + log.target_id + log.target_repr


def test_changing_your_own_password_is_audited_but_never_the_hash(client, staff_user):
    client.force_login(staff_user)
    response = client.post(
        reverse("admin:password_change"),
        {"old_password": "pw-sam-123", "new_password1": "n3w-Passw0rd-x", "new_password2": "n3w-Passw0rd-x"},
    )
    assert response.status_code == 302, response.content[:2000]
    log = AuditLog.objects.get(action="auth.user.password_change")
    assert (log.actor_label, log.target_id, log.details) == ("sam", str(staff_user.pk), {"own": True})
    staff_user.refresh_from_db()
    assert staff_user.password not in str(log.details) + log.target_repr


def test_a_password_set_from_the_command_line_is_audited_as_a_system_change(staff_user):
    staff_user.set_password("another-Passw0rd")
    staff_user.save()
    log = AuditLog.objects.get(action="auth.user.password_change")
    assert (log.actor_type, log.actor_label) == ("system", "manage.py")


def test_an_admin_resetting_a_password_is_audited_with_the_admin_as_actor(ops_client, staff_user):
    url = reverse("admin:auth_user_password_change", args=[staff_user.pk])
    response = ops_client.post(url, {"password1": "Reset-Passw0rd-1", "password2": "Reset-Passw0rd-1"})
    assert response.status_code == 302, response.content[:2000]
    log = AuditLog.objects.get(action="auth.user.password_change")
    assert (log.actor_label, log.details) == ("olivia", {"own": False})


@pytest.mark.parametrize(
    "forwarded,stored",
    [("203.0.113.9, 2001:DB8::1", "2001:db8::1"), ("10.0.0.1, garbage", "127.0.0.1")],
    ids=["ipv6-upper-case", "junk-hop"],
)
def test_a_forwarded_client_address_is_stored_canonically_and_the_chain_verifies(
    client, settings, forwarded, stored
):
    """Behind our proxy the last hop counts; whatever the client wrote, the record verifies."""
    from audit.selectors import audit_verify_chain

    settings.TRUST_X_FORWARDED_FOR = True
    response = client.post(
        reverse("admin:login"), {"username": "nobody", "password": "x"}, HTTP_X_FORWARDED_FOR=forwarded
    )
    assert response.status_code == 200
    assert AuditLog.objects.get(action="auth.login_failed").ip == stored
    assert audit_verify_chain().ok
