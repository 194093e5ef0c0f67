"""The template pages of the admin: list, new, copy, edit with errors by line, preview,
delete (and its refusals), and the issue page's archive switch."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.content.models import Issue, IssueStatus, Template
from newsletter.content.templates import builtin_templates
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement
from tests.web.admin_browser import logged_in_admin, token_for

MJML = (
    "<mjml>\n<mj-body>\n<mj-section>\n<mj-column>\n"
    "<mj-text>{{ issue.subject }}, {{ subscriber.name }}</mj-text>\n"
    "<mj-text><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></mj-text>\n"
    "</mj-column>\n</mj-section>\n</mj-body>\n</mjml>\n"
)


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    return logged_in_admin(app)


def text_of(response: object) -> str:
    return str(response.get_data(as_text=True))  # type: ignore[attr-defined]


def test_the_list_shows_the_built_in_templates_with_what_each_is_for(admin: FlaskClient) -> None:
    page = text_of(admin.get("/admin/templates"))
    for name in ("digest", "statement", "letter", "transactional"):
        assert f">{name}</a>" in page
    assert "Several statements with a table of contents" in page
    assert 'href="/admin/templates"' in text_of(admin.get("/admin/"))  # in the nav


def test_a_new_template_is_saved_and_previewed_with_sample_data(admin: FlaskClient) -> None:
    response = admin.post("/admin/templates/new", data={
        "csrf_token": token_for(admin, "/admin/templates/new"), "name": "Plain",
        "kind": "issue", "mjml": MJML, "text": "{{ issue.subject }}\n{{ unsubscribe_url }}\n"})
    assert response.status_code == 302
    template = db.session.query(Template).filter_by(name="Plain").one()
    assert response.headers["Location"] == f"/admin/templates/{template.id}"

    page = text_of(admin.get(response.headers["Location"]))
    assert "{{ subscriber.name }}" in page  # the variables beside the editor
    assert f'src="/admin/templates/{template.id}/preview.html"' in page
    assert "A sample issue" in page  # the text preview
    preview = admin.get(f"/admin/templates/{template.id}/preview.html")
    assert "A sample issue, Ada" in text_of(preview)
    assert "sandbox" in preview.headers["Content-Security-Policy"]  # a mail document


def test_an_mjml_error_is_shown_at_its_line_and_nothing_is_saved(admin: FlaskClient) -> None:
    broken = MJML.replace("{{ issue.subject }}, {{ subscriber.name }}</mj-text>",
                          "{{ issue.subject }}")
    response = admin.post("/admin/templates/new", data={
        "csrf_token": token_for(admin, "/admin/templates/new"), "name": "Broken",
        "kind": "issue", "mjml": broken, "text": "x"})

    assert response.status_code == 422
    page = text_of(response)
    assert "MJML: line 7:" in page
    assert 'data-error-part="mjml" data-error-line="7"' in page  # the script jumps there
    assert re.search(r'class="error-line"><span class="line-number">7</span>', page)
    assert db.session.query(Template).filter_by(name="Broken").count() == 0


def test_a_built_in_template_is_read_only_and_copied_to_edit(admin: FlaskClient) -> None:
    letter = builtin_templates()["letter"]
    page = text_of(admin.get(f"/admin/templates/{letter.id}"))
    assert "built in and read-only" in page and "Check and save" not in page

    response = admin.post(f"/admin/templates/{letter.id}/copy", data={
        "csrf_token": token_for(admin, f"/admin/templates/{letter.id}")})
    copy = db.session.query(Template).filter_by(name="Copy of letter").one()
    assert response.headers["Location"] == f"/admin/templates/{copy.id}"

    response = admin.post(f"/admin/templates/{copy.id}", data={
        "csrf_token": token_for(admin, f"/admin/templates/{copy.id}"), "name": "Our letter",
        "kind": "issue", "mjml": MJML, "text": "Hi\n"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Template, copy.id).name == "Our letter"


def test_deleting_is_refused_with_why_while_an_unsent_issue_uses_it(admin: FlaskClient) -> None:
    template = Template(name="In use", mjml=MJML, text="x")
    db.session.add(template)
    db.session.commit()
    make_issue((make_statement(),), (make_list(),), subject="Next week", template=template)
    template_id = template.id

    response = admin.post(f"/admin/templates/{template_id}/delete", data={
        "csrf_token": token_for(admin, f"/admin/templates/{template_id}")},
        follow_redirects=True)
    assert "Not deleted:" in text_of(response) and "Next week" in text_of(response)
    assert db.session.get(Template, template_id) is not None

    transactional = builtin_templates()["transactional"]
    response = admin.post(f"/admin/templates/{transactional.id}/delete", data={
        "csrf_token": token_for(admin, "/admin/templates")}, follow_redirects=True)
    assert "POST /api/v1/tx relies on it" in text_of(response)


def test_an_issue_can_be_kept_out_of_the_archive_from_its_page(admin: FlaskClient) -> None:
    issue = make_issue((make_statement(),), (make_list(),), subject="Sent one",
                       status=IssueStatus.SENT)
    issue_id = issue.id
    page = text_of(admin.get(f"/admin/issues/{issue_id}"))
    assert "In the public archive at" in page

    admin.post(f"/admin/issues/{issue_id}/kept-out", data={
        "csrf_token": token_for(admin, f"/admin/issues/{issue_id}"), "keep": "1"})
    db.session.expire_all()
    assert db.session.get(Issue, issue_id).kept_out
    assert "Kept out of the public archive" in text_of(admin.get(f"/admin/issues/{issue_id}"))
    assert admin.get(f"/archive/{issue_id}").status_code == 404
