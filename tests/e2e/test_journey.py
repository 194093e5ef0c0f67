"""The whole journey of the foundation: a statement travels from a Markdown file to an inbox.

Sign up through the form → the confirmation mail reaches the SMTP server → confirm →
import the seed statement → compose → send → exactly one message with the statement's title,
its links, the list headers and a text part → one-click unsubscribe → the next issue does not
reach them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from newsletter.audience.models import Subscriber, SubscriptionStatus
from newsletter.content.models import IssueStatus, Statement
from newsletter.extensions import db
from tests.helpers import SEED_STATEMENT, csrf_token_from
from tests.smtp import CapturingSMTPServer

READER = "ada@example.com"
SEED_LINK = "https://itsgoingdown.org/everybody-out-resources-for-a-season-of-post-election-unrest/"


def path_of(url: str) -> str:
    return urlsplit(url).path


def text_part(message) -> str:  # type: ignore[no-untyped-def]
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "the message has no text part"
    return str(part.get_content())


def html_part(message) -> str:  # type: ignore[no-untyped-def]
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "the message has no HTML part"
    return str(part.get_content())


def sign_up_and_confirm(
    client: FlaskClient, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    form = client.get("/subscribe")
    assert form.status_code == 200
    response = client.post(
        "/subscribe",
        data={
            "email": READER,
            "name": "Ada Lovelace",
            "lists": ["news"],
            "csrf_token": csrf_token_from(form.get_data(as_text=True)),
        },
    )
    assert response.status_code == 200
    run_jobs()

    [confirmation] = mailbox.to(READER)
    link = re.search(r"https://news\.example\.org/confirm/\S+", text_part(confirmation.message))
    assert link, "the confirmation mail carries no confirm link"

    page = client.get(path_of(link.group(0)))
    assert page.status_code == 200
    assert subscription_status() == SubscriptionStatus.UNCONFIRMED  # GET never confirms

    confirmed = client.post(
        path_of(link.group(0)), data={"csrf_token": csrf_token_from(page.get_data(as_text=True))}
    )
    assert confirmed.status_code == 200
    assert subscription_status() == SubscriptionStatus.CONFIRMED


def subscription_status() -> SubscriptionStatus:
    db.session.expire_all()
    subscriber = db.session.query(Subscriber).filter_by(email=READER).one()
    [subscription] = subscriber.subscriptions
    return subscription.status


def compose_and_send(runner: FlaskCliRunner, statement_id: int, run_jobs: Callable[[], None],
                     subject: str) -> int:
    from newsletter.content.issues import create_issue

    issue_id = create_issue(subject=subject, statement_ids=[statement_id], list_slugs=["news"]).id
    result = runner.invoke(args=["issues", "send", str(issue_id)])
    assert result.exit_code == 0, result.output
    run_jobs()
    return int(issue_id)


def test_statement_reaches_a_confirmed_reader_once_and_stops_after_one_click_unsubscribe(
    app: Flask,
    client: FlaskClient,
    runner: FlaskCliRunner,
    mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    from newsletter.audience.lists import create_list
    from newsletter.content.issues import get_issue

    create_list("news", "Movement News")
    sign_up_and_confirm(client, mailbox, run_jobs)

    imported = runner.invoke(args=["statements", "import", str(SEED_STATEMENT)])
    assert imported.exit_code == 0, imported.output
    statement = db.session.query(Statement).one()
    title, statement_id = statement.title, statement.id
    assert title == "An Anarchist Call for Post-election Mobilization"

    mailbox.reset()
    issue_id = compose_and_send(runner, statement_id, run_jobs, "Post-election mobilization")
    assert get_issue(issue_id).status == IssueStatus.SENT

    [delivered] = mailbox.to(READER)
    message = delivered.message
    assert message["Subject"] == "Post-election mobilization"
    assert message.get_content_type() == "multipart/alternative"
    html, text = html_part(message), text_part(message)
    assert title in html and title in text
    assert f'href="{SEED_LINK}"' in html
    assert SEED_LINK in text
    assert "Ada Lovelace" in html
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] and message["Date"]
    assert message["Message-ID"].endswith("@example.org>")
    unsubscribe_urls = re.findall(r"<([^>]+)>", message["List-Unsubscribe"])
    https_url = next(u for u in unsubscribe_urls if u.startswith("https://news.example.org/"))
    assert any(u.startswith("mailto:") for u in unsubscribe_urls)

    # RFC 8058: a mail provider posts the one-click body with no cookies and no CSRF token.
    anonymous = app.test_client()
    one_click = anonymous.post(
        path_of(https_url),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert one_click.status_code == 200
    assert subscription_status() == SubscriptionStatus.UNSUBSCRIBED

    mailbox.reset()
    # Someone else still reads the list (an issue to nobody is refused before it starts).
    from newsletter.audience.lists import get_list_by_slug
    from tests.factories import make_subscriber

    make_subscriber("other@example.org", lists=(get_list_by_slug("news"),))
    next_issue = compose_and_send(runner, statement_id, run_jobs, "The next issue")
    assert get_issue(next_issue).status == IssueStatus.SENT
    assert mailbox.to(READER) == []
    assert len(mailbox.to("other@example.org")) == 1
