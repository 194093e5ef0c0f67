"""Roles hold, in the admin pages and the API (issue 9, "Roles are never checked"): an editor
creates no lists, sends nothing without an admin's permission and reads no subscriber; a
viewer changes nothing; the pages show only what the role may use."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from newsletter.audience.models import MailingList
from newsletter.auth.models import Role
from newsletter.auth.services import create_api_token, create_user
from newsletter.content.models import Issue, IssueStatus, Statement
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.web.admin_browser import PASSWORD, as_browser, log_in, token_for

API = "/api/v1"


def browser_as(app: Flask, role: Role, *, can_send: bool = False) -> FlaskClient:
    email = f"{role.value}{'-sender' if can_send else ''}@example.org"
    user = create_user(email, PASSWORD, role=role)
    user.can_send = can_send
    db.session.commit()
    client = as_browser(app.test_client())
    assert log_in(client, email=email).status_code == 302
    return client


def token_as(role: Role, *, can_send: bool = False) -> dict[str, str]:
    email = f"robot-{role.value}{'-sender' if can_send else ''}@example.org"
    user = create_user(email, PASSWORD, role=role)
    user.can_send = can_send
    db.session.commit()
    return {"Authorization": f"Bearer {create_api_token(email)}"}


@pytest.fixture
def issue_id(app: Flask) -> int:
    news = make_list("news", name="News")
    make_subscriber("ada@example.org", lists=(news,))
    return int(make_issue((make_statement(),), (news,), subject="Weekly").id)


def status_of(issue_id: int) -> IssueStatus:
    db.session.expire_all()
    issue = db.session.get(Issue, issue_id)
    assert issue is not None
    return issue.status


def list_count() -> int:
    return db.session.scalar(select(func.count()).select_from(MailingList)) or 0


# --- editors ------------------------------------------------------------------------------


def test_an_editor_cannot_create_a_list_in_the_admin(app: Flask) -> None:
    editor = browser_as(app, Role.EDITOR)
    token = token_for(editor, "/admin/lists")
    response = editor.post(
        "/admin/lists",
        data={"slug": "secret", "name": "Secret", "optin": "double", "csrf_token": token},
    )
    assert response.status_code == 403
    assert "Not allowed" in response.get_data(as_text=True)
    assert list_count() == 0


def test_an_editor_cannot_create_a_list_through_the_api(client: FlaskClient) -> None:
    response = client.post(
        f"{API}/lists", json={"slug": "secret", "name": "Secret"}, headers=token_as(Role.EDITOR)
    )
    assert response.status_code == 403
    assert response.get_json()["error"]["field"] is None
    assert list_count() == 0


def test_an_editor_cannot_send_an_issue_without_an_admins_permission(
    app: Flask, issue_id: int
) -> None:
    editor = browser_as(app, Role.EDITOR)
    token = token_for(editor, f"/admin/issues/{issue_id}")
    for action in ("send", "schedule"):
        response = editor.post(f"/admin/issues/{issue_id}/{action}", data={"csrf_token": token})
        assert response.status_code == 403
    api = app.test_client().post(f"{API}/issues/{issue_id}/send", headers=token_as(Role.EDITOR))
    assert api.status_code == 403
    assert "permission" in api.get_json()["error"]["message"]
    assert status_of(issue_id) is IssueStatus.DRAFT


def test_an_editor_the_admin_allows_may_send(app: Flask, issue_id: int) -> None:
    editor = browser_as(app, Role.EDITOR, can_send=True)
    token = token_for(editor, f"/admin/issues/{issue_id}")
    response = editor.post(f"/admin/issues/{issue_id}/send", data={"csrf_token": token})
    assert response.status_code == 302
    assert status_of(issue_id) is not IssueStatus.DRAFT


def test_an_editor_the_admin_allows_may_send_through_the_api(
    client: FlaskClient, issue_id: int
) -> None:
    headers = token_as(Role.EDITOR, can_send=True)
    assert client.post(f"{API}/issues/{issue_id}/send", headers=headers).status_code == 202


def test_an_editor_reads_no_subscriber(app: Flask) -> None:
    make_subscriber("ada@example.org", lists=(make_list("news"),))
    editor = browser_as(app, Role.EDITOR)
    for path in ("/admin/subscribers", "/admin/deliveries", "/admin/subscribers/new"):
        response = editor.get(path)
        assert response.status_code == 403, path
        assert "ada@example.org" not in response.get_data(as_text=True)
    api = app.test_client().get(
        f"{API}/subscribers", query_string={"email": "ada@example.org"},
        headers=token_as(Role.EDITOR),
    )
    assert api.status_code == 403
    assert "ada@example.org" not in api.get_data(as_text=True)


def test_an_editor_composes_issues_and_imports_statements(app: Flask) -> None:
    editor = browser_as(app, Role.EDITOR)
    token = token_for(editor, "/admin/statements")
    response = editor.post(
        "/admin/statements",
        data={"markdown": "---\ntitle: Ours\n---\nWe say this.", "csrf_token": token},
    )
    assert response.status_code == 302
    assert editor.get("/admin/issues/new").status_code == 200


# --- viewers ------------------------------------------------------------------------------


def test_a_viewer_reads_but_changes_nothing(app: Flask, issue_id: int) -> None:
    viewer = browser_as(app, Role.VIEWER)
    for path in ("/admin/", "/admin/issues", f"/admin/issues/{issue_id}", "/admin/lists",
                 "/admin/statements"):
        assert viewer.get(path).status_code == 200, path
    token = token_for(viewer, "/admin/statements")
    response = viewer.post(
        "/admin/statements",
        data={"markdown": "---\ntitle: Ours\n---\nWe say this.", "csrf_token": token},
    )
    assert response.status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Statement)) == 1
    assert viewer.get("/admin/issues/new").status_code == 403
    headers = token_as(Role.VIEWER)
    api = app.test_client()
    assert api.get(f"{API}/issues/{issue_id}", headers=headers).status_code == 200
    created = api.post(f"{API}/statements", json={"markdown": "---\ntitle: T\n---\nB"},
                       headers=headers)
    assert created.status_code == 403


# --- what the pages show ------------------------------------------------------------------


def nav_of(page: str) -> str:
    return page.split("<nav>", 1)[1].split("</nav>", 1)[0]


def test_the_nav_shows_only_what_the_role_may_open(app: Flask) -> None:
    editor_nav = nav_of(browser_as(app, Role.EDITOR).get("/admin/").get_data(as_text=True))
    for label in ("Issues", "Statements", "Lists"):
        assert f">{label}</a>" in editor_nav
    for label in ("Subscribers", "Deliveries", "Users"):
        assert f">{label}</a>" not in editor_nav
    admin_nav = nav_of(browser_as(app, Role.ADMIN).get("/admin/").get_data(as_text=True))
    for label in ("Subscribers", "Deliveries", "Users"):
        assert f">{label}</a>" in admin_nav


def test_the_issue_page_offers_only_the_buttons_the_role_may_press(
    app: Flask, issue_id: int
) -> None:
    page = browser_as(app, Role.EDITOR).get(f"/admin/issues/{issue_id}").get_data(as_text=True)
    assert f"/admin/issues/{issue_id}/edit" in page
    assert f"/admin/issues/{issue_id}/send" not in page
    assert f"/admin/issues/{issue_id}/schedule" not in page
    viewer_page = browser_as(app, Role.VIEWER).get(f"/admin/issues/{issue_id}")
    html = viewer_page.get_data(as_text=True)
    assert f"/admin/issues/{issue_id}/edit" not in html
    assert 'name="csrf_token"' in html  # the log-out button only
    assert html.count("<form") == 1
    sender = browser_as(app, Role.EDITOR, can_send=True)
    assert f"/admin/issues/{issue_id}/send" in sender.get(f"/admin/issues/{issue_id}").get_data(
        as_text=True
    )


def test_the_lists_and_statements_pages_hide_their_forms_from_those_who_may_not_post(
    app: Flask,
) -> None:
    viewer = browser_as(app, Role.VIEWER)
    assert "Create list" not in viewer.get("/admin/lists").get_data(as_text=True)
    assert "Import a statement" not in viewer.get("/admin/statements").get_data(as_text=True)
    editor = browser_as(app, Role.EDITOR)
    assert "Create list" not in editor.get("/admin/lists").get_data(as_text=True)
    assert "Import a statement" in editor.get("/admin/statements").get_data(as_text=True)
