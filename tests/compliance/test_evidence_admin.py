"""Stored packs in admin: listed for who may view them, downloaded only with the
download permission, and every download audited with the zip's hash."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth.models import Permission

from audit.models import AuditLog
from audit.services import Actor
from compliance.models import EvidencePack
from compliance.pack import zip_verify
from compliance.periods import period_parse
from compliance.services import evidence_pack_store

pytestmark = pytest.mark.django_db

LIST = "/admin/compliance/evidencepack/"


@pytest.fixture
def pack() -> EvidencePack:
    stored, created = evidence_pack_store(period=period_parse("2026-10-01..2026-10-31"), actor=Actor.system("test"))
    assert created
    return stored


def grant(user, *codenames):
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="compliance", codename__in=codenames))


def download_url(pack):
    return f"{LIST}{pack.pk}/download/"


def test_a_viewer_without_the_download_permission_sees_the_pack_but_cannot_take_it(client, staff_user, pack):
    grant(staff_user, "view_evidencepack")
    client.force_login(staff_user)
    before = AuditLog.objects.filter(action="compliance.evidence.download").count()

    listing = client.get(LIST)
    assert listing.status_code == 200
    assert b"2026-10-01 \xe2\x80\x93 2026-10-31" in listing.content and pack.sha256[:12].encode() in listing.content
    assert download_url(pack).encode() not in listing.content

    refused = client.get(download_url(pack))
    assert refused.status_code == 403
    assert AuditLog.objects.filter(action="compliance.evidence.download").count() == before


def test_the_download_permission_gives_the_zip_and_the_download_is_audited(client, staff_user, pack):
    grant(staff_user, "view_evidencepack", "download_evidencepack")
    client.force_login(staff_user)
    assert download_url(pack).encode() in client.get(LIST).content

    response = client.get(download_url(pack))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="soc2-evidence-2026-10-01-2026-10-31.zip"'
    assert hashlib.sha256(response.content).hexdigest() == pack.sha256 == EvidencePack.objects.get().sha256
    assert zip_verify(response.content).period == "2026-10-01..2026-10-31"

    record = AuditLog.objects.filter(action="compliance.evidence.download").get()
    assert (record.actor_label, record.actor_user_id) == ("sam", staff_user.pk)
    assert (record.target_type, record.target_id) == ("compliance.evidencepack", str(pack.pk))
    assert record.details == {"period": "2026-10-01..2026-10-31", "sha256": pack.sha256, "size": pack.size}


def test_someone_without_admin_access_gets_nothing(client, outsider, pack):
    client.force_login(outsider)
    response = client.get(download_url(pack))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not AuditLog.objects.filter(action="compliance.evidence.download").exists()


def test_stored_packs_cannot_be_added_changed_or_deleted_even_by_a_superuser(ops_client, pack):
    assert ops_client.get(f"{LIST}add/").status_code == 403
    assert ops_client.post(f"{LIST}{pack.pk}/delete/", {"post": "yes"}).status_code == 403
    page = ops_client.get(f"{LIST}{pack.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert EvidencePack.objects.filter(pk=pack.pk, sha256=pack.sha256).exists()
