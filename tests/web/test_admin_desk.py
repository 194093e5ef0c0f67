"""The writing desk in the admin: the statement editor and its live preview, uploads, the
compose form's notes, the warnings and previews on the issue page, test sends, delete and
hide."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select

from newsletter.auth import services
from newsletter.auth.models import Role
from newsletter.content.models import Issue, IssueStatus, Statement
from newsletter.delivery.transactional import TransactionalMessage
from newsletter.extensions import db
from newsletter.mail.render import preview_issue
from newsletter.models import utcnow
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.helpers import csrf_token_from
from tests.smtp import CapturingSMTPServer
from tests.web.admin_browser import EMAIL, logged_in_admin, token_for

MARKDOWN = "Hello **{{ name }}**.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>x()</script>\n"


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return logged_in_admin(app)


def preview(client: FlaskClient, markdown: str, **extra: object) -> dict[str, str]:
    token = token_for(client, "/admin/statements/new")
    response = client.post(
        "/admin/statements/preview",
        data=json.dumps({"markdown": markdown, **extra}),
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    return dict(response.get_json())


def squeeze(html: str) -> str:
    return re.sub(r">\s+<", "><", html.strip())


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 10), "navy").save(out, "PNG")
    return out.getvalue()


def test_writing_editing_and_deleting_a_statement_in_the_editor(client: FlaskClient) -> None:
    page = client.get("/admin/statements/new").get_data(as_text=True)
    assert 'data-preview-url="/admin/statements/preview"' in page
    assert "{{ name }}" in page  # the placeholders are listed beside the editor
    response = client.post(
        "/admin/statements/new",
        data={
            "csrf_token": csrf_token_from(page),
            "title": "Our second call",
            "author": "The Desk",
            "date": "2024-05-01",
            "body": "We **write** here.",
            "previewed": "1",
        },
    )
    assert response.status_code == 302
    statement = db.session.scalars(select(Statement)).one()
    assert (statement.slug, statement.author) == ("our-second-call", "The Desk")
    assert statement.previewed_at is not None
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "<strong>write</strong>" in shown

    edit = f"/admin/statements/{statement.id}/edit"
    page = client.get(edit).get_data(as_text=True)
    assert "We **write** here." in page
    response = client.post(edit, data={
        "csrf_token": csrf_token_from(page), "title": "Our second call", "body": "Changed.",
    })
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Statement, statement.id).body == "Changed.\n"  # type: ignore[union-attr]

    refused = client.post(edit, data={"csrf_token": csrf_token_from(page), "title": "",
                                      "body": ""})
    assert refused.status_code == 422

    response = client.post(
        f"/admin/statements/{statement.id}/delete",
        data={"csrf_token": token_for(client, f"/admin/statements/{statement.id}")},
    )
    assert response.status_code == 302 and response.headers["Location"] == "/admin/statements"
    assert db.session.scalars(select(Statement)).all() == []


def test_deleting_a_statement_a_draft_uses_is_refused_with_a_clear_message(
    client: FlaskClient,
) -> None:
    statement = make_statement(title="Busy")
    make_issue((statement,), (make_list("news"),), subject="Friday draft")
    response = client.post(
        f"/admin/statements/{statement.id}/delete",
        data={"csrf_token": token_for(client, f"/admin/statements/{statement.id}")},
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert "Not deleted" in page and "Friday draft" in page
    assert db.session.get(Statement, statement.id) is not None


def test_the_live_preview_is_the_mails_own_rendering(client: FlaskClient) -> None:
    statement = make_statement(body=MARKDOWN)
    issue = make_issue((statement,), (make_list("news"),))
    html = preview(client, MARKDOWN)["html"]
    assert "<table>" in html and "<script>" not in html
    assert "Hello <strong>Reader</strong>" in html
    mail_html = preview_issue(issue, name="Reader")[0]
    # exactly what the mail holds (MJML only folds the white space between tags)
    assert squeeze(html) in squeeze(mail_html)

    assert statement.previewed_at is None
    preview(client, statement.body, statement_id=statement.id)
    db.session.expire_all()
    assert db.session.get(Statement, statement.id).previewed_at is not None  # type: ignore[union-attr]


def test_the_live_preview_resolves_relative_links_as_the_mail_will(
    app: Flask, client: FlaskClient
) -> None:
    app.config["SITE_URL"] = "https://tenants.example.org/union"
    body = "See [the notes](notes.html) and ![the map](img/map.png)."
    typed = preview(client, body, slug="our-call", date="2024-05-01")["html"]
    assert 'href="https://tenants.example.org/union/2024/05/01/notes.html"' in typed
    assert 'src="https://tenants.example.org/union/2024/05/01/img/map.png"' in typed

    statement = make_statement(body=body, slug="our-call")
    issue = make_issue((statement,), (make_list("news"),))
    stored = preview(client, body, statement_id=statement.id)["html"]
    mail_html = preview_issue(issue, name="Reader")[0]
    for url in re.findall(r'(?:href|src)="([^"]+)"', stored):
        assert url.startswith("https://tenants.example.org/union/2020/11/03/")
        assert f'"{url}"' in mail_html  # the same address the mail links to


def test_the_live_preview_needs_the_csrf_token(client: FlaskClient) -> None:
    response = client.post(
        "/admin/statements/preview", data=json.dumps({"markdown": "x"}),
        content_type="application/json",
    )
    assert response.status_code == 400


def test_the_editors_upload_button_answers_with_the_markdown_of_the_image(
    client: FlaskClient,
) -> None:
    token = token_for(client, "/admin/statements/new")
    response = client.post(
        "/admin/media/upload",
        data={"csrf_token": token, "file": (io.BytesIO(png()), "map.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["url"].startswith("https://news.example.org/media/")
    assert body["markdown"] == f"![map]({body['url']})"
    library = client.get("/admin/media").get_data(as_text=True)
    assert body["url"] in library and "map.png" in library

    fake = client.post(
        "/admin/media/upload",
        data={"csrf_token": token, "file": (io.BytesIO(b"GIF89a but not really"), "x.gif")},
        content_type="multipart/form-data",
    )
    assert fake.status_code == 400
    assert "not an image" in fake.get_json()["error"]["message"]


def test_the_media_page_refuses_a_file_that_only_looks_like_an_image(
    client: FlaskClient,
) -> None:
    page = client.get("/admin/media").get_data(as_text=True)
    response = client.post(
        "/admin/media",
        data={"csrf_token": csrf_token_from(page),
              "file": (io.BytesIO(b"#!/bin/sh\nrm -rf /\n"), "cat.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "not an image" in response.get_data(as_text=True)


def test_the_compose_form_says_what_the_template_adds_and_lists_the_placeholders(
    client: FlaskClient,
) -> None:
    make_list("news")
    page = client.get("/admin/issues/new").get_data(as_text=True)
    assert "greets the reader by name" in page
    assert "an intro that greets again doubles" in page
    for name in ("name", "list_name", "org_name", "archive_url"):
        assert "{{ " + name + " }}" in page
    assert 'name="sender_name"' in page


def test_composing_orders_the_statements_by_their_numbers_and_keeps_the_sender_name(
    client: FlaskClient,
) -> None:
    make_list("news")
    first, second = make_statement(title="First"), make_statement(title="Second")
    response = client.post("/admin/issues/new", data={
        "csrf_token": token_for(client, "/admin/issues/new"),
        "subject": "Digest", "sender_name": "The Desk", "intro": "Today:",
        "statements": [str(first.id), str(second.id)],
        f"position-{first.id}": "2", f"position-{second.id}": "1",
        "lists": ["news"], "template": "",
    })
    assert response.status_code == 302
    issue = db.session.scalars(select(Issue)).one()
    assert [s.title for s in issue.statements] == ["Second", "First"]
    assert issue.sender_name == "The Desk"
    page = client.get(f"/admin/issues/{issue.id}").get_data(as_text=True)
    assert "From: The Desk &lt;news@example.org&gt;" in page  # the raw headers
    assert "List-Unsubscribe" in page


def test_the_issue_page_shows_warnings_and_both_preview_widths(client: FlaskClient) -> None:
    statement = make_statement(body="[here](http://10.0.0.1/)")
    issue = make_issue((statement,), (make_list("news"),), subject="S" * 160)
    page = client.get(f"/admin/issues/{issue.id}").get_data(as_text=True)
    for code in ("subject-long", "local-links", "not-previewed"):
        assert f'data-code="{code}"' in page
    assert 'class="preview preview-desktop"' in page
    phone = client.get(f"/admin/issues/{issue.id}?width=phone").get_data(as_text=True)
    assert 'class="preview preview-phone"' in phone
    frame = client.get(f"/admin/issues/{issue.id}/preview.html")
    assert "sandbox" in frame.headers["Content-Security-Policy"]


def test_a_test_send_reaches_only_the_chosen_editors_and_does_not_count(
    app: Flask, client: FlaskClient, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    news = make_list("news")
    make_subscriber("reader@example.com", lists=(news,))
    chosen = services.create_user("chosen@example.org", "correct horse battery", Role.EDITOR).id
    services.create_user("other@example.org", "correct horse battery", Role.EDITOR)
    viewer = services.create_user("viewer@example.org", "correct horse battery", Role.VIEWER).id
    issue = make_issue((make_statement(title="Proof me"),), (news,), subject="Weekly",
                       sender_name="The Desk")
    page = client.get(f"/admin/issues/{issue.id}").get_data(as_text=True)
    assert "viewer@example.org" not in page  # only editors and admins are offered
    mailbox.reset()

    response = client.post(
        f"/admin/issues/{issue.id}/test",
        data={"csrf_token": csrf_token_from(page), "to": [str(chosen)]},
        follow_redirects=True,
    )
    assert "Test sent to chosen@example.org" in response.get_data(as_text=True)
    run_jobs()

    [received] = mailbox.messages
    assert received.recipients == ["chosen@example.org"]
    message = received.message
    assert message["Subject"] == "[Test] Weekly"
    assert message["X-Newsletter-Test"] == f"issue {issue.id}"
    assert message["From"] == "The Desk <news@example.org>"
    assert "Proof me" in message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]

    db.session.expire_all()
    sent = db.session.get(Issue, issue.id)
    assert sent is not None and sent.status is IssueStatus.DRAFT
    assert (sent.total_count, sent.sent_count, sent.failed_count) == (0, 0, 0)
    assert len(db.session.scalars(select(TransactionalMessage)).all()) == 1

    refused = client.post(
        f"/admin/issues/{issue.id}/test",
        data={"csrf_token": csrf_token_from(page), "to": [str(viewer)]},
    )
    assert refused.status_code == 302
    assert len(db.session.scalars(select(TransactionalMessage)).all()) == 1


def test_a_viewer_may_not_send_a_test(app: Flask) -> None:
    from tests.web.admin_browser import as_browser, log_in

    services.create_user("viewer@example.org", "correct horse battery", Role.VIEWER)
    issue = make_issue((make_statement(),), (make_list("news"),))
    viewer = as_browser(app.test_client())
    assert log_in(viewer, "viewer@example.org").status_code == 302
    page = viewer.get(f"/admin/issues/{issue.id}").get_data(as_text=True)
    assert "Send the test" not in page
    response = viewer.post(
        f"/admin/issues/{issue.id}/test", data={"csrf_token": csrf_token_from(page), "to": ["1"]}
    )
    assert response.status_code == 403


def test_drafts_are_deleted_and_sent_issues_hidden_from_the_list(client: FlaskClient) -> None:
    news, statement = make_list("news"), make_statement()
    draft = make_issue((statement,), (news,), subject="Scrap me")
    sent = make_issue((statement,), (news,), subject="Went out", status=IssueStatus.SENT,
                      started_at=utcnow(), rendered_html="<p>sent</p>")
    draft_id, sent_id = draft.id, sent.id

    page = client.get(f"/admin/issues/{sent_id}").get_data(as_text=True)
    assert f"/admin/issues/{sent_id}/delete" not in page
    refused = client.post(f"/admin/issues/{sent_id}/delete",
                          data={"csrf_token": csrf_token_from(page)}, follow_redirects=True)
    assert "A sent issue can be hidden instead" in refused.get_data(as_text=True)

    client.post(f"/admin/issues/{sent_id}/hide",
                data={"csrf_token": csrf_token_from(page), "hidden": "1"})
    listed = client.get("/admin/issues").get_data(as_text=True)
    assert "Went out" not in listed and "1 hidden issue not shown" in listed
    assert "Went out" in client.get("/admin/issues?hidden=1").get_data(as_text=True)

    page = client.get(f"/admin/issues/{draft_id}").get_data(as_text=True)
    response = client.post(f"/admin/issues/{draft_id}/delete",
                           data={"csrf_token": csrf_token_from(page)})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/issues"
    assert db.session.get(Issue, draft_id) is None
    assert db.session.get(Issue, sent_id) is not None
    assert re.search("Scrap me", client.get("/admin/issues").get_data(as_text=True)) is None
    assert EMAIL
