import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls_errors")]


def test_anonymous_callers_are_denied_by_default_with_the_common_shape(client):
    response = client.post("/api/v1/batch/", {"events": []}, content_type="application/json")
    assert response.status_code in (401, 403)
    error = response.json()["error"]
    assert error["status"] == response.status_code
    assert error["code"] == "not_authenticated"
    assert error["fields"] == []


def test_a_bad_field_deep_in_a_batch_is_named_by_its_path(client, outsider):
    client.force_login(outsider)
    response = client.post(
        "/api/v1/batch/",
        {"events": [{"quantity": 3}, {"quantity": 1}, {"quantity": 0}]},
        content_type="application/json",
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["fields"] == [
        {
            "field": "events.2.quantity",
            "code": "min_value",
            "message": "Ensure this value is greater than or equal to 1.",
        }
    ]
    assert error["message"].startswith("events.2.quantity:")


def test_malformed_json_is_a_400_in_the_same_shape(client, outsider):
    client.force_login(outsider)
    response = client.post("/api/v1/batch/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_a_conflict_names_the_field(client, outsider):
    client.force_login(outsider)
    response = client.post("/api/v1/conflict/", {}, content_type="application/json")
    message = "key k-1 was used with different content"
    assert response.status_code == 409
    assert response.json()["error"] == {
        "status": 409,
        "code": "conflict",
        "message": message,
        "fields": [{"field": "events.0.idempotency_key", "code": "conflict", "message": message}],
    }


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("not_found", 404, "not_found"),
        ("permission_denied", 403, "permission_denied"),
        ("conflict", 409, "conflict"),
        ("payload_too_large", 413, "payload_too_large"),
        ("unavailable", 503, "unavailable"),
        ("upstream_error", 502, "upstream_error"),
    ],
)
def test_each_kind_of_application_error_has_its_status(client, outsider, kind, status, code):
    client.force_login(outsider)
    response = client.post(f"/api/v1/kind/{kind}/", {}, content_type="application/json")
    assert response.status_code == status
    assert response.json() == {"error": {"status": status, "code": code, "message": "It went wrong.", "fields": []}}


def test_an_invalid_application_error_answers_like_a_bad_field(client, outsider):
    client.force_login(outsider)
    response = client.post("/api/v1/kind/invalid/", {"field": "tier"}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "status": 400,
        "code": "invalid",
        "message": "tier: It went wrong.",
        "fields": [{"field": "tier", "code": "invalid", "message": "It went wrong."}],
    }
