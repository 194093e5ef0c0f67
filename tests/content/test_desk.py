"""The writing desk's rules: statements written, edited and deleted; issues deleted or
hidden; placeholders; what a template adds; each warning before sending; the sender name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from flask import Flask

from newsletter.content import writing
from newsletter.content.compose import (
    expand_placeholders,
    issue_warnings,
    template_features,
)
from newsletter.content.issues import create_issue, get_issue, update_issue
from newsletter.content.models import Issue, IssueStatus, Statement, Template
from newsletter.content.templates import default_template
from newsletter.errors import IssueStateError, NotFound, ValidationError
from newsletter.extensions import db
from newsletter.mail.render import preview_issue, render_issue
from newsletter.models import utcnow
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.smtp import CapturingSMTPServer


def codes(issue: Issue, template: Template | None = None) -> list[str]:
    html = preview_issue(issue)[0]
    return [w.code for w in issue_warnings(issue, html, template or default_template())]


def test_a_statement_written_in_the_admin_is_stored_with_a_slug_from_its_title(
    app: Flask,
) -> None:
    statement = writing.create_statement(
        title="  Our Call  to Act ", body="We **act**.\r\n", author="The Collective",
        when=date(2024, 5, 1),
    )
    assert (statement.slug, statement.title, statement.body) == (
        "our-call-to-act", "Our Call to Act", "We **act**.\n"
    )
    edited = writing.update_statement(statement.id, title="Our call", body="New text.")
    assert (edited.slug, edited.body, edited.author) == ("our-call-to-act", "New text.\n", "")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": "", "body": "text"}, "title"),
        ({"title": "T", "body": "  \n"}, "body"),
        ({"title": "T" * 301, "body": "text"}, "title"),
        ({"title": "T", "body": "text", "slug": "!!!"}, "slug"),
    ],
)
def test_a_statement_without_what_it_needs_is_refused(
    app: Flask, fields: dict[str, str], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        writing.create_statement(**fields)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_a_slug_another_statement_has_is_refused(app: Flask) -> None:
    make_statement("taken", title="First")
    with pytest.raises(ValidationError, match="First") as caught:
        writing.create_statement(title="Second", body="x", slug="taken")
    assert caught.value.field == "slug"


def test_deleting_a_statement_of_a_draft_is_refused_and_names_the_draft(app: Flask) -> None:
    statement = make_statement(title="Kept")
    make_issue((statement,), (make_list("news"),), subject="Monday draft")
    with pytest.raises(writing.StatementInUse, match="Monday draft"):
        writing.delete_statement(statement.id)
    assert db.session.get(Statement, statement.id) is not None


def test_deleting_a_statement_a_sent_issue_used_leaves_the_sent_issue_as_it_was_sent(
    app: Flask,
) -> None:
    news = make_list("news")
    statement = make_statement(title="Gone later")
    other = make_statement(title="Stays")
    issue = make_issue((statement, other), (news,), subject="Sent one")
    rendered = render_issue(issue)
    issue.status, issue.rendered_html, issue.rendered_text = (
        IssueStatus.SENT, rendered.html, rendered.text
    )
    db.session.commit()
    issue_id = issue.id

    assert writing.delete_statement(statement.id) == 1

    sent = get_issue(issue_id)
    assert [s.title for s in sent.statements] == ["Stays"]
    assert "Gone later" in (sent.rendered_html or "")  # the snapshot is what was sent
    with pytest.raises(NotFound):
        writing.delete_statement(statement.id)


def test_only_a_draft_is_deleted_and_only_a_started_issue_is_hidden(app: Flask) -> None:
    news, statement = make_list("news"), make_statement()
    draft = make_issue((statement,), (news,))
    sent = make_issue((statement,), (news,), status=IssueStatus.SENT, started_at=utcnow())
    scheduled = make_issue((statement,), (news,), status=IssueStatus.SCHEDULED)
    draft_id, sent_id = draft.id, sent.id

    with pytest.raises(IssueStateError):
        writing.delete_issue(sent_id)
    with pytest.raises(IssueStateError):
        writing.delete_issue(scheduled.id)
    with pytest.raises(IssueStateError):
        writing.set_hidden(draft_id, True)

    writing.delete_issue(draft_id)
    assert db.session.get(Issue, draft_id) is None
    assert db.session.get(Statement, statement.id) is not None  # its statements stay

    assert writing.set_hidden(sent_id, True).hidden_at is not None
    with pytest.raises(IssueStateError):  # hidden, still not changed
        update_issue(sent_id, subject="Changed")
    assert writing.set_hidden(sent_id, False).hidden_at is None


def test_statements_keep_the_order_given_when_an_issue_is_edited(app: Flask) -> None:
    news = make_list("news")
    first, second, third = (make_statement(title=t) for t in ("One", "Two", "Three"))
    issue = create_issue(
        subject="Order", statement_ids=[first.id, second.id, third.id], list_slugs=["news"]
    )
    update_issue(issue.id, statement_ids=[third.id, first.id, second.id])
    assert [s.title for s in get_issue(issue.id).statements] == ["Three", "One", "Two"]
    html = preview_issue(get_issue(issue.id))[0]
    assert html.index("Three") < html.index("One") < html.index("Two")
    assert news.id


def test_placeholders_in_the_intro_and_statements_become_each_readers_values(
    app: Flask,
) -> None:
    make_list("news", name="Movement News")
    statement = make_statement(body="Thank you, {{ name }}, from {{ org_name }}.\n\n`{{ name }}`")
    issue = create_issue(
        subject="S", statement_ids=[statement.id], list_slugs=["news"],
        intro="Dear readers of {{list_name}}: see {{ archive_url }}",
    )
    html, text = preview_issue(issue, name="Ada")
    assert "Thank you, Ada, from" in html and "Thank you, Ada, from" in text
    assert "<code>{{ name }}</code>" in html  # code shows what it shows
    assert "Dear readers of Movement News" in html
    assert f"https://news.example.org/archive/{issue.id}" in text
    assert expand_placeholders("{{ nobody }}", {"name": "x"}) == "{{ nobody }}"


def test_the_built_in_template_says_it_greets_by_name_and_links_to_unsubscribe(
    app: Flask,
) -> None:
    features = " ".join(template_features(default_template()))
    assert "greets the reader by name" in features
    assert "an intro that greets again doubles" in features
    assert "unsubscribe link" in features


def test_each_warning_before_sending(app: Flask) -> None:
    make_list("news")
    statement = make_statement(
        body="See [the hall](http://192.168.1.20/map) and [dev](http://localhost:5000/x).",
    )
    issue = create_issue(
        subject="x" * 151, statement_ids=[statement.id], list_slugs=["news"],
        intro="Hello friends, welcome.",
    )
    found = codes(issue)
    assert {"subject-long", "local-links", "not-previewed", "double-greeting"} <= set(found)
    [local] = [w for w in issue_warnings(issue, preview_issue(issue)[0], default_template())
               if w.code == "local-links"]
    assert "192.168.1.20" in local.message and "localhost" in local.message

    writing.mark_previewed(statement)
    issue.subject, issue.intro = "Fine", "Today: the news."
    statement.body = "Plain [link](https://example.org/)."
    db.session.commit()
    assert codes(issue) == []

    issue.subject = ""
    assert "subject-empty" in codes(issue)


def test_a_custom_template_without_an_unsubscribe_link_is_warned_about(app: Flask) -> None:
    make_list("news")
    statement = make_statement()
    writing.mark_previewed(statement)
    bare = Template(
        name="Bare",
        mjml="<mjml><mj-body><mj-section><mj-column><mj-text>{% for s in statements %}"
        "{{ s.html|safe }}{% endfor %}</mj-text></mj-column></mj-section></mj-body></mjml>",
        text="{% for s in statements %}{{ s.text }}{% endfor %}",
    )
    db.session.add(bare)
    db.session.commit()
    issue = create_issue(
        subject="S", statement_ids=[statement.id], list_slugs=["news"], template_id=bare.id
    )
    assert codes(issue, bare) == ["no-unsubscribe"]
    assert template_features(bare) == []


def test_the_sender_name_is_a_name_only(app: Flask) -> None:
    make_list("news")
    statement = make_statement()
    issue = create_issue(
        subject="S", statement_ids=[statement.id], list_slugs=["news"], sender_name=" The  Desk "
    )
    assert issue.sender_name == "The Desk"
    with pytest.raises(ValidationError) as caught:
        update_issue(issue.id, sender_name="Evil <boss@example.com>")
    assert caught.value.field == "sender_name"


def test_an_issue_goes_out_from_its_sender_name_on_the_configured_address(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    from newsletter.delivery.send.dispatcher import request_send

    news = make_list("news")
    make_subscriber("ada@example.com", lists=(news,))
    statement = make_statement()
    issue = create_issue(
        subject="S", statement_ids=[statement.id], list_slugs=["news"], sender_name="The Desk"
    )
    mailbox.reset()
    request_send(issue.id)
    run_jobs()
    [received] = mailbox.to("ada@example.com")
    assert received.message["From"] == "The Desk <news@example.org>"
    assert received.mail_from == "news@example.org"
