"""The return path: each issue message's envelope sender is ``bounces+TOKEN@domain``, the
token signed and naming the delivery; and the headers feedback loops and list tools read."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from newsletter.audience.models import Subscriber, SubscriberStatus
from newsletter.delivery.bounces.returnpath import (
    ReturnPath,
    delivery_of,
    make_token,
    read_token,
)
from newsletter.delivery.send import dispatcher
from tests.delivery.helpers import Audience, deliveries_by_email, make_sendable_issue
from tests.smtp import CapturingSMTPServer

SECRET = "test-secret-key"


@pytest.mark.parametrize("delivery_id", [1, 255, 256, 70_000, 2**40 + 3])
def test_a_token_names_its_delivery(delivery_id: int) -> None:
    token = make_token(delivery_id, SECRET)
    assert re.fullmatch(r"[0-9a-f]{24,40}", token)
    assert read_token(token, SECRET) == delivery_id
    # MTAs and mailboxes may change the case of a local part
    assert read_token(token.upper(), SECRET) == delivery_id


def test_a_tampered_or_foreign_token_is_refused() -> None:
    token = make_token(42, SECRET)
    other = "a" if token[3] != "a" else "b"  # a hex digit changed
    assert read_token(token[:3] + other + token[4:], SECRET) is None
    assert read_token(token, "another installation's key") is None
    assert read_token(token[:-2], SECRET) is None
    assert read_token(make_token(43, SECRET)[:10] + token[10:], SECRET) is None
    for junk in ("", "!!!", "a" * 200, "unsubscribe", "ab", token + "0"):
        assert read_token(junk, SECRET) is None


def test_the_return_path_holds_only_the_token() -> None:
    address = ReturnPath("Bounces <bounces@example.org>", SECRET).for_delivery(7)
    local, _, domain = address.partition("@")
    assert domain == "example.org"
    assert local == "bounces+" + make_token(7, SECRET)
    assert delivery_of(address, None, SECRET) == 7
    assert delivery_of("bounces@example.org", None, SECRET) is None


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "BOUNCE_ADDRESS": "bounces@example.org"}


def test_each_message_goes_out_with_its_own_signed_return_path(
    audience: Audience, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    issue_id = make_sendable_issue(audience.news, audience.events).id
    dispatcher.request_send(issue_id)
    run_jobs()

    rows = deliveries_by_email(issue_id)
    assert len(mailbox.messages) == len(audience.emails)
    for captured in mailbox.messages:
        [recipient] = captured.recipients
        local, _, domain = captured.mail_from.partition("@")
        assert domain == "example.org" and local.startswith("bounces+")
        token = local.removeprefix("bounces+")
        assert recipient.split("@")[0] not in token
        assert read_token(token, SECRET) == rows[recipient].id
        # the From the reader sees is unchanged
        assert captured.message["From"] == "Example News <news@example.org>"


def test_issue_messages_carry_feedback_id_list_archive_and_list_help(
    audience: Audience, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    issue_id = make_sendable_issue(audience.news, audience.events).id
    dispatcher.request_send(issue_id)
    run_jobs()

    for captured in mailbox.messages:
        message = captured.message
        assert message["List-Archive"] == "<https://news.example.org/archive>"
        assert message["List-Help"] == "<mailto:news@example.org?subject=help>"
        campaign, list_part, kind, sender = message["Feedback-ID"].split(":")
        assert (campaign, kind, sender) == (str(issue_id), "issue", "example.org")
        assert list_part.startswith("news.")


def test_without_a_bounce_address_the_envelope_sender_is_the_from_address(
    app_config: dict[str, Any], audience: Audience, mailbox: CapturingSMTPServer,
    run_jobs: Callable[[], None], app: Any,
) -> None:  # fmt: skip
    app.config["BOUNCE_ADDRESS"] = None
    issue_id = make_sendable_issue(audience.news, audience.events).id
    dispatcher.request_send(issue_id)
    run_jobs()
    assert {m.mail_from for m in mailbox.messages} == {"news@example.org"}


def test_transactional_mail_has_a_return_path_of_its_own_and_its_bounce_is_found(
    app: Any, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    from newsletter.content.models import Template, TemplateKind
    from newsletter.delivery import transactional
    from newsletter.delivery.bounces import policy
    from newsletter.delivery.bounces.models import BounceSource
    from newsletter.extensions import db
    from tests.delivery.bounce_samples import dsn
    from tests.factories import make_list, make_subscriber

    make_subscriber("reader@example.net", lists=(make_list("news"),))
    mjml = "<mjml><mj-body><mj-text>{{ data.code }}</mj-text></mj-body></mjml>"
    db.session.add(Template(name="Code", kind=TemplateKind.TRANSACTIONAL,
                            text="{{ data.code }}", mjml=mjml))  # fmt: skip
    db.session.commit()
    row = transactional.create(to="reader@example.net", template="Code", subject="Your code",
                               data={"code": "1"})  # fmt: skip
    run_jobs()

    [sent] = mailbox.messages
    token = sent.mail_from.partition("@")[0].removeprefix("bounces+")
    assert read_token(token, SECRET) is None  # not a delivery's token
    outcome = policy.take_message(dsn("forwarded@elsewhere.example"), BounceSource.LMTP,
                                  envelope_recipient=sent.mail_from)  # fmt: skip
    assert (outcome.kind, outcome.recipient) == ("hard", "reader@example.net")
    db.session.expire_all()
    reader = db.session.scalars(
        select(Subscriber).where(Subscriber.email == "reader@example.net")
    ).one()
    [event] = policy.events_of(reader.id)
    assert (event.issue_id, event.delivery_id) == (None, None)
    assert reader.status is SubscriberStatus.BLOCKLISTED
    assert row.id is not None
