"""Admin pages for statements and issues: import, view, compose, preview, send, progress."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from newsletter.content.models import Issue, IssueStatus, Statement
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.helpers import SEED_STATEMENT, csrf_token_from
from tests.smtp import CapturingSMTPServer
from tests.web.admin_browser import logged_in_admin, token_for

SEED_TITLE = "An Anarchist Call for Post-election Mobilization"
SEED_LINK = "https://itsgoingdown.org/from-nyc-to-the-world-a-call-for-a-peoples-state-of-emergency/"


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser logged in as an admin."""
    return logged_in_admin(app)


def imported_statement() -> Statement:
    return db.session.scalars(select(Statement)).one()


def test_uploading_the_seed_file_imports_it_and_shows_it_rendered(client: FlaskClient) -> None:
    response = client.post(
        "/admin/statements",
        data={
            "csrf_token": token_for(client, "/admin/statements"),
            "file": (io.BytesIO(SEED_STATEMENT.read_bytes()), SEED_STATEMENT.name),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    statement = imported_statement()
    assert response.headers["Location"] == f"/admin/statements/{statement.id}"
    assert statement.slug == "post-election-mobilization"

    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert SEED_TITLE in page
    assert f'href="{SEED_LINK}"' in page
    assert "MACC" in page  # the author, from the front matter
    assert "layout" in page and "post" in page  # the rest of the front matter
    assert "imported" in page


def test_pasting_markdown_imports_it(client: FlaskClient) -> None:
    response = client.post(
        "/admin/statements",
        data={
            "csrf_token": token_for(client, "/admin/statements"),
            "markdown": SEED_STATEMENT.read_text(),
        },
    )
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert SEED_TITLE in page
    assert f'href="{SEED_LINK}"' in page
    assert SEED_TITLE in client.get("/admin/statements").get_data(as_text=True)


def test_importing_the_same_slug_again_updates_it(client: FlaskClient) -> None:
    data = {"markdown": "---\ntitle: First\nslug: same\n---\nOne."}
    client.post(
        "/admin/statements", data={**data, "csrf_token": token_for(client, "/admin/statements")}
    )
    data = {"markdown": "---\ntitle: Second\nslug: same\n---\nTwo."}
    response = client.post(
        "/admin/statements", data={**data, "csrf_token": token_for(client, "/admin/statements")}
    )
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "updated" in page
    assert imported_statement().title == "Second"


@pytest.mark.parametrize(
    "markdown",
    [
        "---\ntitle: [not closed\n---\nBody",
        "---\nauthor: Nobody\n---\n",
    ],
)
def test_a_broken_statement_is_refused_with_a_clear_error(
    client: FlaskClient, markdown: str
) -> None:
    response = client.post(
        "/admin/statements",
        data={"csrf_token": token_for(client, "/admin/statements"), "markdown": markdown},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'class="field-error"' in page
    assert db.session.scalar(select(Statement)) is None


def test_an_empty_import_asks_for_a_file_or_markdown(client: FlaskClient) -> None:
    response = client.post(
        "/admin/statements", data={"csrf_token": token_for(client, "/admin/statements")}
    )
    assert response.status_code == 422
    assert "Upload a file or paste Markdown" in response.get_data(as_text=True)


def test_statement_view_escapes_nothing_unsafe(client: FlaskClient) -> None:
    statement = make_statement(
        title="<b>Bold</b> claims", body="Hi <script>alert(1)</script> [x](javascript:alert(1))"
    )
    page = client.get(f"/admin/statements/{statement.id}").get_data(as_text=True)
    assert "&lt;b&gt;Bold&lt;/b&gt; claims" in page
    assert "<script>alert(1)</script>" not in page
    assert 'href="javascript' not in page


def compose(client: FlaskClient, **data: object) -> object:
    return client.post(
        "/admin/issues/new", data={"csrf_token": token_for(client, "/admin/issues/new"), **data}
    )


def test_compose_an_issue_and_preview_it(client: FlaskClient) -> None:
    news = make_list("news", name="News")
    statement = make_statement(title=SEED_TITLE)
    response = compose(
        client,
        subject="Call to action",
        preheader="Read this first",
        intro="Friends,",
        statements=[str(statement.id)],
        lists=["news"],
        template="",
    )
    assert response.status_code == 302
    issue = db.session.scalars(select(Issue)).one()
    assert response.headers["Location"] == f"/admin/issues/{issue.id}"
    assert issue.status is IssueStatus.DRAFT
    assert issue.statements == [statement]
    assert issue.lists == [news]

    page = client.get(f"/admin/issues/{issue.id}").get_data(as_text=True)
    assert "Call to action" in page
    assert 'badge-draft' in page
    assert re.search(r"<iframe[^>]*\bsandbox\b", page)
    assert f'src="/admin/issues/{issue.id}/preview.html"' in page
    assert SEED_TITLE in page.split("<pre")[1]  # the text part

    preview = client.get(f"/admin/issues/{issue.id}/preview.html")
    assert preview.status_code == 200
    assert preview.mimetype == "text/html"
    assert SEED_TITLE in preview.get_data(as_text=True)
    policy = preview.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy  # falls back to 'none': no script runs
    assert "sandbox" in policy


def test_statements_are_ordered_by_the_numbers_given(client: FlaskClient) -> None:
    make_list("news")
    first, second, third = (make_statement(title=t) for t in ("One", "Two", "Three"))
    compose(
        client,
        subject="Ordered",
        statements=[str(first.id), str(second.id), str(third.id)],
        **{f"position-{first.id}": "3", f"position-{second.id}": "1", f"position-{third.id}": "2"},
        lists=["news"],
        template="",
    )
    issue = db.session.scalars(select(Issue)).one()
    assert [s.title for s in issue.statements] == ["Two", "Three", "One"]


def test_compose_without_statements_or_lists_says_what_is_missing(client: FlaskClient) -> None:
    make_list("news")
    make_statement()
    response = compose(client, subject="Empty", template="")
    assert response.status_code == 422
    assert 'class="field-error"' in response.get_data(as_text=True)
    assert db.session.scalar(select(Issue)) is None


def test_a_draft_can_be_edited(client: FlaskClient) -> None:
    news = make_list("news")
    one, two = make_statement(title="One"), make_statement(title="Two")
    issue = make_issue((one,), (news,), subject="Before")
    form = client.get(f"/admin/issues/{issue.id}/edit").get_data(as_text=True)
    assert 'value="Before"' in form
    response = client.post(
        f"/admin/issues/{issue.id}/edit",
        data={
            "csrf_token": csrf_token_from(form),
            "subject": "After",
            "statements": [str(one.id), str(two.id)],
            f"position-{two.id}": "1",
            f"position-{one.id}": "2",
            "lists": ["news"],
            "template": "",
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    issue = db.session.get(Issue, issue.id)
    assert issue is not None
    assert issue.subject == "After"
    assert [s.title for s in issue.statements] == ["Two", "One"]


def test_an_issue_that_was_sent_cannot_be_edited(client: FlaskClient) -> None:
    issue = make_issue((make_statement(),), (make_list(),), status=IssueStatus.SENT)
    response = client.get(f"/admin/issues/{issue.id}/edit")
    assert response.headers["Location"] == f"/admin/issues/{issue.id}"
    assert "only drafts" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_unknown_issue_is_a_404(client: FlaskClient) -> None:
    assert client.get("/admin/issues/999").status_code == 404
    assert client.get("/admin/statements/999").status_code == 404


def test_send_now_delivers_and_the_progress_shows_it(
    client: FlaskClient, run_jobs: Callable[[], None], mailbox: CapturingSMTPServer
) -> None:
    news = make_list("news")
    make_subscriber("ada@example.org", lists=(news,))
    make_subscriber("grace@example.org", lists=(news,))
    issue = make_issue((make_statement(title=SEED_TITLE),), (news,), subject="Now")
    issue_id = issue.id

    page = client.get(f"/admin/issues/{issue_id}").get_data(as_text=True)
    assert "Send now" in page
    assert "data-confirm" in page  # the button asks before it sends
    response = client.post(
        f"/admin/issues/{issue_id}/send", data={"csrf_token": csrf_token_from(page)}
    )
    assert response.status_code == 302
    run_jobs()

    progress = client.get(f"/admin/issues/{issue_id}/progress")
    assert progress.is_json
    data = progress.get_json()
    assert {key: data[key] for key in ("status", "total", "sent", "failed", "pending")} == {
        "status": "sent", "total": 2, "sent": 2, "failed": 0, "pending": 0
    }
    assert len(mailbox.to("ada@example.org")) == 1
    assert len(mailbox.to("grace@example.org")) == 1

    page = client.get(f"/admin/issues/{issue_id}").get_data(as_text=True)
    assert "badge-sent" in page
    assert "<progress" in page
    assert "Send now" not in page


def test_the_status_page_refreshes_while_sending(client: FlaskClient) -> None:
    issue = make_issue((make_statement(),), (make_list(),), status=IssueStatus.SENDING)
    page = client.get(f"/admin/issues/{issue.id}").get_data(as_text=True)
    assert f'data-url="/admin/issues/{issue.id}/progress"' in page
    assert 'data-active="true"' in page
    assert re.search(r'<noscript><meta http-equiv="refresh" content="\d+"></noscript>', page)
    # Our own script file only: nothing inline (the CSP forbids it), nothing third-party.
    scripts = re.findall(r"<script[^>]*>", page)
    assert '<script src="/static/admin.js">' in scripts
    assert all(re.fullmatch(r'<script src="/static/[a-z]+\.js">', tag) for tag in scripts)


def test_sending_twice_is_refused_with_a_message(
    client: FlaskClient, run_jobs: Callable[[], None]
) -> None:
    issue = make_issue((make_statement(),), (make_list(),), status=IssueStatus.SENT)
    page = client.get(f"/admin/issues/{issue.id}").get_data(as_text=True)
    response = client.post(
        f"/admin/issues/{issue.id}/send", data={"csrf_token": csrf_token_from(page)}
    )
    assert response.status_code == 302
    assert "Not sent" in client.get(response.headers["Location"]).get_data(as_text=True)
