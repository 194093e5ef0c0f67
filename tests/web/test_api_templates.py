"""Templates in the API: GET/POST /templates, GET/PATCH/DELETE /templates/{id}, copies,
errors by line, refusals; and POST /tx by a built-in template's name on a fresh database."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from newsletter.auth.models import Role
from newsletter.content.models import Template
from newsletter.content.templates import builtin_templates
from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement
from tests.smtp import CapturingSMTPServer
from tests.web.api_client import Api, assert_error

MJML = (
    "<mjml>\n<mj-body>\n<mj-section>\n<mj-column>\n"
    "<mj-text>Thanks, {{ subscriber.name }}: order {{ data.order }}.</mj-text>\n"
    "</mj-column>\n</mj-section>\n</mj-body>\n</mjml>\n"
)
TEXT = "Thanks, {{ subscriber.name }}: order {{ data.order }}.\n"


@pytest.fixture
def api(client: FlaskClient, app: Flask) -> Api:
    from newsletter.auth.services import create_api_token, create_user

    create_user("robot@example.org", "a long enough password 123")
    return Api(client, create_api_token("robot@example.org"))


def test_post_tx_by_the_built_in_name_works_on_a_fresh_database(
    api: Api, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    assert db.session.query(Template).count() == 0  # nothing made before the first call

    response = api.post("/tx", json={
        "to": "ada@example.org", "template": "transactional", "subject": "Welcome",
        "data": {"body": "Your account is ready.\n\nSee you soon.",
                 "button_url": "https://news.example.org/start", "button_label": "Start"},
    })

    assert response.status_code == 202, response.get_json()
    run_jobs()
    [mail] = mailbox.messages
    assert mail.message["Subject"] == "Welcome"
    text = mail.message.get_body(("plain",)).get_content()
    assert "Your account is ready." in text and "Start: https://news.example.org/start" in text
    html = mail.message.get_body(("html",)).get_content()
    assert 'href="https://news.example.org/start"' in html


def test_post_tx_refuses_an_issue_template_saying_so(api: Api) -> None:
    message = assert_error(api.post("/tx", json={
        "to": "ada@example.org", "template": "digest", "subject": "Hi"}), 422, "template")
    assert "for issues" in message and "transactional" in message


def test_templates_are_listed_by_kind(api: Api) -> None:
    everything = api.get("/templates").get_json()["items"]
    assert [(t["name"], t["kind"], t["builtin"]) for t in everything] == [
        ("digest", "issue", True), ("letter", "issue", True), ("statement", "issue", True),
        ("transactional", "transactional", True),
    ]
    only = api.get("/templates?kind=transactional").get_json()["items"]
    assert [t["name"] for t in only] == ["transactional"]
    assert "mjml" not in everything[0]


def test_create_read_change_copy_and_delete_a_template(
    api: Api, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    created = api.post("/templates", json={"name": "Receipt", "kind": "transactional",
                                           "mjml": MJML, "text": TEXT})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert (body["name"], body["kind"], body["builtin"]) == ("Receipt", "transactional", False)
    assert created.headers["Location"].endswith(f"/api/v1/templates/{body['id']}")
    assert api.get(f"/templates/{body['id']}").get_json()["mjml"] == MJML

    # POST /tx takes the id as well as the name
    sent = api.post("/tx", json={"to": "bo@example.org", "template": body["id"],
                                 "subject": "Order {{ data.order }}", "data": {"order": 7}})
    assert sent.status_code == 202
    run_jobs()
    assert mailbox.messages[0].message["Subject"] == "Order 7"

    changed = api.call("PATCH", f"/templates/{body['id']}", json={"name": "Receipts"})
    assert changed.status_code == 200 and changed.get_json()["name"] == "Receipts"

    copy = api.post(f"/templates/{body['id']}/copy", json={})
    assert copy.status_code == 201 and copy.get_json()["name"] == "Copy of Receipts"

    assert api.call("DELETE", f"/templates/{copy.get_json()['id']}").status_code == 204
    assert_error(api.get(f"/templates/{copy.get_json()['id']}"), 404, "template")


def test_an_mjml_error_is_a_422_naming_the_part_and_line(api: Api) -> None:
    broken = MJML.replace("</mj-text>", "")  # the mj-text never closes
    message = assert_error(api.post("/templates", json={
        "name": "Broken", "kind": "transactional", "mjml": broken, "text": TEXT}), 422, "mjml")
    assert message.startswith("MJML: line 6:")
    message = assert_error(api.post("/templates", json={
        "name": "Broken", "kind": "transactional", "mjml": MJML, "text": "{{ data.order }\n"}),
        422, "text")
    assert "line 1" in message


def test_what_may_not_change_or_go_is_refused_with_why(api: Api) -> None:
    builtins = builtin_templates()
    message = assert_error(api.call("DELETE", f"/templates/{builtins['transactional'].id}"),
                           409, "template")
    assert "POST /api/v1/tx relies on it" in message
    assert_error(api.call("PATCH", f"/templates/{builtins['letter'].id}", json={"text": "x"}),
                 409, "template")
    custom = api.post("/templates", json={"name": "Ours", "mjml": MJML.replace(
        "data.order", "issue.subject"), "text": "{{ issue.subject }}\n"}).get_json()
    draft = make_issue((make_statement(),), (make_list(),), subject="Next week",
                       template_id=custom["id"])
    message = assert_error(api.call("DELETE", f"/templates/{custom['id']}"), 409, "template")
    assert f"#{draft.id}" in message and "not sent yet" in message
    assert_error(api.post("/templates", json={"name": "letter", "mjml": MJML, "text": TEXT}),
                 409, "name")


def test_a_viewer_reads_templates_but_cannot_make_one(client: FlaskClient, app: Flask) -> None:
    from newsletter.auth.services import create_api_token, create_user

    create_user("viewer@example.org", "a long enough password 123", role=Role.VIEWER)
    viewer = Api(client, create_api_token("viewer@example.org"))
    assert viewer.get("/templates").status_code == 200
    assert_error(viewer.post("/templates", json={"name": "X", "mjml": MJML, "text": TEXT}),
                 403, None)
