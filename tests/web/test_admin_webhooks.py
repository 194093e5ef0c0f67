"""The admin's webhook pages: add an endpoint with its events (the secret shown once, and
again on request), rotate, turn off, delete; the delivery log with its retry button.
Admins only, CSRF on every form."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from newsletter import events
from newsletter.auth.models import Role
from newsletter.auth.services import create_user
from newsletter.delivery.webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage
from newsletter.extensions import db
from tests.web.admin_browser import PASSWORD, as_browser, log_in, logged_in_admin, token_for
from tests.webhook_server import WebhookReceiver

SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]{40,}")


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "WEBHOOKS_ALLOW_PRIVATE": True, "WEBHOOKS_RETRY_SCHEDULE": "0.1"}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return logged_in_admin(app)


def add(client: FlaskClient, url: str, kinds: list[str], **extra: str) -> Any:
    token = token_for(client, "/admin/webhooks")
    return client.post(
        "/admin/webhooks", data={"url": url, "events": kinds, "csrf_token": token, **extra}
    )


def only_endpoint() -> WebhookEndpoint:
    db.session.remove()
    return db.session.scalars(select(WebhookEndpoint)).one()


def post_action(client: FlaskClient, endpoint_id: int, action: str, **data: str) -> Any:
    token = token_for(client, f"/admin/webhooks/{endpoint_id}")
    return client.post(
        f"/admin/webhooks/{endpoint_id}/{action}", data={"csrf_token": token, **data}
    )


def test_an_admin_adds_an_endpoint_and_sees_its_secret_once(
    admin: FlaskClient, receiver: WebhookReceiver
) -> None:
    answer = add(admin, receiver.url("/hooks"), ["subscriber.subscribed", "issue.sent"],
                 description="CRM")  # fmt: skip

    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    endpoint = only_endpoint()
    assert endpoint.events == ["subscriber.subscribed", "issue.sent"]
    assert endpoint.description == "CRM"
    assert SECRET.fullmatch(endpoint.secret)
    assert endpoint.secret in page
    listing = admin.get("/admin/webhooks").get_data(as_text=True)
    assert receiver.url("/hooks") in listing
    assert endpoint.secret not in listing
    assert endpoint.secret not in admin.get(f"/admin/webhooks/{endpoint.id}").get_data(True)


def test_the_secret_is_shown_again_on_request_and_rotated(
    admin: FlaskClient, receiver: WebhookReceiver
) -> None:
    add(admin, receiver.url("/hooks"), ["issue.sent"])
    endpoint = only_endpoint()
    old = endpoint.secret

    shown = post_action(admin, endpoint.id, "secret")
    assert shown.status_code == 200 and old in shown.get_data(as_text=True)

    rotated = post_action(admin, endpoint.id, "rotate").get_data(as_text=True)
    endpoint = only_endpoint()
    assert endpoint.secret != old and endpoint.secret in rotated
    assert endpoint.previous_secret == old
    assert "24 hours" in rotated


def test_forms_without_the_csrf_token_are_refused(
    admin: FlaskClient, receiver: WebhookReceiver
) -> None:
    answer = admin.post("/admin/webhooks", data={"url": receiver.url("/x"),
                                                 "events": ["issue.sent"]})  # fmt: skip
    assert answer.status_code in (400, 422)
    assert db.session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0
    add(admin, receiver.url("/hooks"), ["issue.sent"])
    endpoint = only_endpoint()
    old = endpoint.secret
    for action in ("secret", "rotate", "delete", "active"):
        answer = admin.post(f"/admin/webhooks/{endpoint.id}/{action}")
        assert old not in answer.get_data(as_text=True)
    endpoint = only_endpoint()
    assert endpoint.secret == old and endpoint.active


def test_a_private_address_is_refused_in_the_form_when_the_setting_is_off(
    app: Flask, admin: FlaskClient
) -> None:
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = False
    answer = add(admin, "http://127.0.0.1:8080/hook", ["issue.sent"])

    assert answer.status_code == 422
    assert "NEWSLETTER_WEBHOOKS_ALLOW_PRIVATE" in answer.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


def test_no_event_chosen_is_refused(admin: FlaskClient, receiver: WebhookReceiver) -> None:
    answer = add(admin, receiver.url("/hooks"), [])
    assert answer.status_code == 422
    assert "Choose at least one event." in answer.get_data(as_text=True)


def test_an_endpoint_is_turned_off_on_and_deleted(
    admin: FlaskClient, receiver: WebhookReceiver
) -> None:
    add(admin, receiver.url("/hooks"), ["issue.sent"])
    endpoint_id = only_endpoint().id

    post_action(admin, endpoint_id, "active", active="0")
    assert not only_endpoint().active
    assert "turned off by an admin" in admin.get(f"/admin/webhooks/{endpoint_id}").get_data(True)
    post_action(admin, endpoint_id, "active", active="1")
    assert only_endpoint().active
    answer = post_action(admin, endpoint_id, "delete")
    assert answer.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0


def test_the_log_shows_each_attempt_and_retries_on_request(
    app: Flask, admin: FlaskClient, receiver: WebhookReceiver, run_jobs: Callable[[], None]
) -> None:
    receiver.answers["/down"] = [(500, {}), (500, {}), (200, {})]
    add(admin, receiver.url("/down"), ["issue.sent"])
    endpoint_id = only_endpoint().id
    events.publish("issue.sent", {"issue_id": 7})
    db.session.commit()
    run_jobs()

    page = admin.get(f"/admin/webhooks/{endpoint_id}").get_data(as_text=True)
    assert "issue.sent" in page and "given up" in page
    assert page.count("the endpoint answered 500") >= 2
    assert '<td class="num" data-label="Attempts">2</td>' in page
    message_id = db.session.scalars(select(WebhookMessage.id)).one()
    answer = post_action(admin, endpoint_id, f"messages/{message_id}/retry")
    assert answer.status_code == 302
    run_jobs()
    db.session.remove()
    assert db.session.get(WebhookMessage, message_id).status is MessageStatus.DELIVERED  # type: ignore[union-attr]
    page = admin.get(f"/admin/webhooks/{endpoint_id}").get_data(as_text=True)
    assert "delivered" in page and '<td class="num" data-label="Attempts">3</td>' in page


@pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER])
def test_only_admins_may_open_the_webhook_pages(
    app: Flask, role: Role, receiver: WebhookReceiver
) -> None:
    create_user("someone@example.org", PASSWORD, role=role)
    client = as_browser(app.test_client())
    assert log_in(client, email="someone@example.org").status_code == 302

    assert client.get("/admin/webhooks").status_code == 403
    dashboard = client.get("/admin/")
    assert dashboard.status_code == 200
    assert "/admin/webhooks" not in dashboard.get_data(as_text=True)
