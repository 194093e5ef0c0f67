"""The double opt-in mail: sent through the configured relay, once, with a working link."""

from __future__ import annotations

import re

from flask import Flask

from newsletter.audience.confirmation import send_confirmation
from newsletter.audience.models import SubscriptionStatus
from newsletter.audience.tokens import read_token
from tests.factories import make_list, make_subscriber
from tests.smtp import CapturingSMTPServer


def test_the_mail_carries_a_link_for_this_subscription(
    app: Flask, mailbox: CapturingSMTPServer
) -> None:
    news = make_list("news", name="Movement News")
    ada = make_subscriber("ada@example.org", lists=(news,), status=SubscriptionStatus.UNCONFIRMED)
    send_confirmation(ada.id, news.id)
    [mail] = mailbox.to("ada@example.org")
    assert mail.mail_from == "news@example.org"
    message = mail.message
    assert "Movement News" in message["Subject"]
    assert message["To"] and "ada@example.org" in message["To"]
    assert message["Auto-Submitted"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    link = re.search(r"https://news\.example\.org/confirm/(\S+)", text)
    assert link, text
    assert link.group(0) in html
    token = read_token("confirm", link.group(1), max_age=60)
    assert (token.subscriber_id, token.list_id) == (ada.id, news.id)


def test_nothing_is_sent_once_confirmed_or_unsubscribed(
    app: Flask, mailbox: CapturingSMTPServer
) -> None:
    news = make_list("news")
    ada = make_subscriber("ada@example.org", lists=(news,), status=SubscriptionStatus.CONFIRMED)
    bob = make_subscriber("bob@example.org", lists=(news,),
                          status=SubscriptionStatus.UNSUBSCRIBED)
    send_confirmation(ada.id, news.id)
    send_confirmation(bob.id, news.id)
    send_confirmation(9999, news.id)
    assert mailbox.messages == []


def test_an_internationalised_domain_is_sent_in_punycode(
    app: Flask, mailbox: CapturingSMTPServer
) -> None:
    news = make_list("news")
    leser = make_subscriber("leser@bücher.example", lists=(news,),
                            status=SubscriptionStatus.UNCONFIRMED)
    send_confirmation(leser.id, news.id)
    [mail] = mailbox.messages
    assert mail.recipients == ["leser@xn--bcher-kva.example"]
