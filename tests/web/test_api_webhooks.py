"""The webhooks API: GET/POST /webhooks and DELETE /webhooks/{id}, for admins only; the
secret is in the POST's answer alone; a private address is refused unless allowed."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.auth.models import Role
from newsletter.auth.services import create_api_token, create_user
from tests.web.api_client import Api, assert_error

PASSWORD = "a long enough password 123"


@pytest.fixture
def api(client: FlaskClient, app: Flask) -> Api:
    create_user("robot@example.org", PASSWORD)
    return Api(client, create_api_token("robot@example.org"))


def test_create_list_and_delete_an_endpoint(api: Api) -> None:
    made = api.post(
        "/webhooks",
        json={
            "url": "https://crm.example.org/hooks",
            "events": ["issue.sent", "subscriber.confirmed"],
        },
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    body = made.get_json()
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["subscriber.confirmed", "issue.sent"]
    assert body["active"] is True

    listed = api.get("/webhooks").get_json()["items"]
    assert [item["url"] for item in listed] == ["https://crm.example.org/hooks"]
    assert "secret" not in listed[0]

    assert api.call("DELETE", f"/webhooks/{body['id']}").status_code == 204
    assert api.get("/webhooks").get_json()["items"] == []
    assert_error(api.call("DELETE", f"/webhooks/{body['id']}"), 404, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://127.0.0.1/hook", "events": ["issue.sent"]}, "url"),
        ({"url": "ftp://example.org/", "events": ["issue.sent"]}, "url"),
        ({"url": "https://example.org/", "events": ["user.created"]}, "events"),
        ({"url": "https://example.org/", "events": []}, "events"),
    ],
)
def test_a_refused_endpoint_is_a_422_naming_the_field(
    api: Api, body: dict[str, object], field: str
) -> None:
    assert_error(api.post("/webhooks", json=body), 422, field)


def test_an_editor_may_not_touch_webhooks(client: FlaskClient, app: Flask) -> None:
    create_user("editor@example.org", PASSWORD, role=Role.EDITOR)
    editor = Api(client, create_api_token("editor@example.org"))
    assert_error(editor.get("/webhooks"), 403, None)
    assert_error(editor.post("/webhooks", json={"url": "https://example.org/",
                                               "events": ["issue.sent"]}), 403, None)  # fmt: skip
