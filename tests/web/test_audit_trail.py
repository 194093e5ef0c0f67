"""The audit log as the admin pages and the API write it, and the page that searches it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select

from newsletter.audience.models import OptIn
from newsletter.auth import services
from newsletter.auth.models import AuditEvent, Role
from newsletter.content.models import IssueStatus
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement
from tests.helpers import csrf_token_from
from tests.web.admin_browser import EMAIL, PASSWORD, as_browser, log_in, logged_in_admin, token_for


def events() -> list[AuditEvent]:
    """Every event, oldest first (what the database holds now)."""
    db.session.remove()
    return list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def actions() -> list[str]:
    return [event.action for event in events()]


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return logged_in_admin(app)


@pytest.fixture
def api(app: Flask, client: FlaskClient) -> dict[str, str]:
    """Authorization headers for an API token of a new admin (the calls below make lists)."""
    services.create_user("api@example.org", PASSWORD, role=Role.ADMIN)
    return {"Authorization": f"Bearer {services.create_api_token('api@example.org')}"}


def create_list_in_admin(admin: FlaskClient, slug: str) -> Any:
    return admin.post(
        "/admin/lists",
        data={
            "slug": slug,
            "name": "Movement News",
            "description": "Weekly",
            "optin": "double",
            "public": "y",
            "csrf_token": token_for(admin, "/admin/lists"),
        },
    )


# --- the admin pages ----------------------------------------------------------------------


def test_an_admin_form_post_is_recorded_with_who_what_and_when(admin: FlaskClient) -> None:
    before = datetime.now(UTC)
    response = create_list_in_admin(admin, "news")
    assert response.status_code == 302

    event = events()[-1]
    assert event.action == "admin.lists"
    assert event.actor == EMAIL
    assert event.user_id == services.find_user(EMAIL).id  # type: ignore[union-attr]
    assert before - timedelta(seconds=1) <= event.created_at <= datetime.now(UTC)
    assert event.detail["method"] == "POST"
    assert event.detail["status"] == 302
    assert event.detail["fields"] == ["description", "name", "optin", "public", "slug"]
    assert event.ip is None  # NEWSLETTER_STORE_IP is off by default


def test_the_route_ids_are_the_target(admin: FlaskClient) -> None:
    issue_id = make_issue((make_statement(),), (make_list(),), status=IssueStatus.SENDING).id
    token = token_for(admin, f"/admin/issues/{issue_id}")
    assert admin.post(
        f"/admin/issues/{issue_id}/pause", data={"csrf_token": token}
    ).status_code == 302

    event = events()[-1]
    assert (event.action, event.target) == ("admin.issue_pause", f"issue_id={issue_id}")
    assert event.detail["location"] == f"/admin/issues/{issue_id}"


def test_a_refused_admin_action_is_not_recorded(admin: FlaskClient) -> None:
    issue = make_issue((make_statement(),), (make_list(),), status=IssueStatus.SENT)
    token = token_for(admin, f"/admin/issues/{issue.id}")
    recorded = actions()

    # Sending a sent issue: redirected back with an error message, nothing changed.
    response = admin.post(f"/admin/issues/{issue.id}/send", data={"csrf_token": token})
    assert response.status_code == 302
    # A form with a mistake: shown again with a 422.
    assert create_list_in_admin(admin, "Not A Slug").status_code == 422
    # No CSRF token: 400.
    assert admin.post("/admin/lists", data={"slug": "x", "name": "X"}).status_code == 400
    assert actions() == recorded


def test_pages_that_are_only_read_are_not_recorded(admin: FlaskClient) -> None:
    recorded = actions()
    for path in ("/admin/", "/admin/lists", "/admin/subscribers", "/admin/audit"):
        assert admin.get(path).status_code == 200
    assert admin.head("/admin/lists").status_code == 200
    assert actions() == recorded


def test_a_post_by_someone_not_logged_in_is_not_recorded(client: FlaskClient) -> None:
    token = token_for(as_browser(client), "/admin/login")  # a valid CSRF token, no login
    response = client.post("/admin/lists", data={"slug": "x", "name": "X", "csrf_token": token})
    assert response.status_code == 302  # to the login page
    assert actions() == []


def test_logging_in_and_out_are_recorded_but_not_the_password(
    app: Flask, client: FlaskClient
) -> None:
    services.create_user(EMAIL, PASSWORD)
    assert log_in(client, EMAIL, "wrong password!").status_code == 401
    assert actions() == []  # a failed login changes nothing

    assert log_in(client).status_code == 302
    token = token_for(client, "/admin/")
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302

    recorded = events()
    assert [(e.action, e.actor) for e in recorded] == [
        ("admin.login", EMAIL),
        ("admin.logout", EMAIL),  # who was logged in until then
    ]
    assert recorded[0].detail["fields"] == ["email", "password"]
    assert PASSWORD not in json.dumps([e.detail for e in recorded])


def test_the_setup_link_token_is_not_kept(app: Flask, client: FlaskClient) -> None:
    path = services.first_admin_setup_url().removeprefix(app.config["BASE_URL"])
    token = path.rsplit("/", 1)[1]
    as_browser(client)
    page = client.get(path).get_data(as_text=True)
    response = client.post(
        path,
        data={
            "email": "first@example.org",
            "password": PASSWORD,
            "confirm": PASSWORD,
            "csrf_token": csrf_token_from(page),
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    [event] = events()
    assert (event.action, event.actor) == ("admin.setup", "first@example.org")
    assert event.target == ""
    assert token not in json.dumps(
        [event.target, event.detail, event.action, event.actor]
    )


# --- the API ------------------------------------------------------------------------------


def test_an_api_call_that_changes_something_is_recorded_with_the_new_id(
    client: FlaskClient, api: dict[str, str]
) -> None:
    response = client.post(
        "/api/v1/lists", headers=api, json={"slug": "news", "name": "News", "optin": "single"}
    )
    assert response.status_code == 201
    [event] = events()
    assert event.action == "api.create_list"
    assert event.actor == "api@example.org"
    assert event.detail["id"] == response.get_json()["id"]
    assert event.detail["fields"] == ["name", "optin", "slug"]


def test_api_calls_that_fail_or_only_read_are_not_recorded(
    client: FlaskClient, api: dict[str, str]
) -> None:
    assert client.post("/api/v1/lists", headers=api, json={"slug": "Bad!"}).status_code == 422
    assert client.post("/api/v1/lists", json={"slug": "news", "name": "N"}).status_code == 401
    assert client.post("/api/v1/nowhere", headers=api, json={}).status_code == 404
    assert client.get("/api/v1/lists", headers=api).status_code == 200
    assert client.get("/api/v1/subscribers", headers=api).status_code == 200
    assert actions() == []


def test_subscriber_data_in_a_body_is_not_kept(client: FlaskClient, api: dict[str, str]) -> None:
    make_list("news", optin=OptIn.SINGLE)
    response = client.post(
        "/api/v1/subscribers",
        headers=api,
        json={"email": "ada@example.com", "name": "Ada Lovelace", "lists": ["news"]},
    )
    assert response.status_code == 201
    [event] = events()
    assert event.detail["id"] == response.get_json()["id"]
    kept = json.dumps([event.target, event.detail])
    assert "ada@example.com" not in kept and "Lovelace" not in kept


# --- the IP setting -----------------------------------------------------------------------


@pytest.mark.parametrize("store_ip", [False, True])
def test_the_client_address_is_kept_only_when_the_setting_allows(
    app: Flask, client: FlaskClient, api: dict[str, str], store_ip: bool
) -> None:
    app.config["STORE_IP"] = store_ip
    response = client.post(
        "/api/v1/lists",
        headers=api,
        json={"slug": "news", "name": "News"},
        environ_base={"REMOTE_ADDR": "203.0.113.7"},
    )
    assert response.status_code == 201
    [event] = events()
    assert event.ip == ("203.0.113.7" if store_ip else None)


# --- the page -----------------------------------------------------------------------------


def seed_events(count: int, **fields: Any) -> list[AuditEvent]:
    made = [
        AuditEvent(
            actor=fields.get("actor", "editor@example.org"),
            action=fields.get("action", "admin.lists"),
            target=fields.get("target", ""),
            detail={"method": "POST", "status": 302},
            created_at=fields.get("created_at", datetime.now(UTC)),
        )
        for _ in range(count)
    ]
    db.session.add_all(made)
    db.session.commit()
    return made


def rows(html: str) -> list[str]:
    body = html.split("<tbody>")[1].split("</tbody>")[0] if "<tbody>" in html else ""
    return re.findall(r"<tr>(.*?)</tr>", body, re.S)


def test_the_audit_page_searches_by_actor_action_and_dates(admin: FlaskClient) -> None:
    db.session.execute(delete(AuditEvent))  # the admin's own login
    seed_events(1, actor="ada@example.org", action="admin.issue_send",
                created_at=datetime(2024, 5, 1, 12, tzinfo=UTC))
    seed_events(1, actor="grace@example.org", action="api.create_list",
                created_at=datetime(2024, 6, 1, 12, tzinfo=UTC))
    seed_events(1, actor="cli", action="cli.lists_create",
                created_at=datetime(2024, 7, 1, 12, tzinfo=UTC))

    def found(**query: str) -> list[str]:
        response = admin.get("/admin/audit", query_string=query)
        assert response.status_code == 200
        return re.findall(r"<code>([^<]+)</code>", "".join(rows(response.get_data(as_text=True))))

    assert found(actor="ADA") == ["admin.issue_send"]
    assert found(action="create") == ["cli.lists_create", "api.create_list"]
    assert found(since="2024-06-01", until="2024-06-01") == ["api.create_list"]
    assert found(since="2024-06-02") == ["cli.lists_create"]
    assert found(until="2024-05-31", action="issue") == ["admin.issue_send"]
    assert found(actor="%") == []  # a LIKE wildcard is a plain character here


def test_a_bad_date_is_a_422_naming_the_field(admin: FlaskClient) -> None:
    response = admin.get("/admin/audit?since=yesterday")
    assert response.status_code == 422
    assert "“From” must be a date" in response.get_data(as_text=True)
    assert admin.get("/admin/audit?since=2024-06-02&until=2024-06-01").status_code == 422


def test_the_audit_page_pages_by_keyset_newest_first(admin: FlaskClient) -> None:
    seed_events(5, action="admin.lists")  # filtered out
    made = seed_events(120, action="api.update_subscriber")
    newest_first = [f"id={event.id}" for event in reversed(made)]
    for event in made:
        event.target = f"id={event.id}"
    db.session.commit()

    seen: list[str] = []
    path: str | None = "/admin/audit?action=update_subscriber"
    while path is not None:
        html = admin.get(path).get_data(as_text=True)
        targets = re.findall(r'data-label="Target">([^<]*)</td>', html)
        assert 0 < len(targets) <= 50
        seen.extend(targets)
        following = re.search(r'rel="next" href="([^"]+)"', html)
        path = following.group(1).replace("&amp;", "&") if following else None
        if path is not None:
            assert "action=update_subscriber" in path  # the filter holds on every page
    assert seen == newest_first


def test_the_audit_page_is_for_admins_only(app: Flask) -> None:
    services.create_user("ed@example.org", PASSWORD, role=Role.EDITOR)
    editor = as_browser(app.test_client())
    assert log_in(editor, "ed@example.org").status_code == 302
    assert editor.get("/admin/audit").status_code == 403
    assert 'href="/admin/audit"' not in editor.get("/admin/").get_data(as_text=True)


def test_the_admin_nav_leads_to_the_audit_page(admin: FlaskClient) -> None:
    assert 'href="/admin/audit"' in admin.get("/admin/").get_data(as_text=True)
