"""The List-Id header (RFC 2919): the id from the list's slug and the site's host, the list's
name beside it as a phrase of its own, so that no name can shape the header or add one."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable
from email.message import EmailMessage

import pytest
from flask import Flask

from newsletter.delivery.send import dispatcher
from newsletter.mail.message import ListInfo, MessageSkeleton, Recipient
from tests.factories import make_issue, make_list, make_statement, make_subscriber
from tests.smtp import CapturingSMTPServer

INJECTIONS = [
    "Evil\r\nBcc: victim@example.net",
    "Evil\r\nBcc: victim@example.net <list@evil.example>",
    "Evil <list@evil.example>",
    'Evil" <list@evil.example>, "x',
    "Evil\nList-Id: <list.evil.example>",
    "=?utf-8?q?Evil?=\r\n\tBcc: victim@example.net",
    "Evil\u2028Bcc: victim@example.net",
]


def headers_of(list_info: ListInfo) -> tuple[bytes, EmailMessage]:
    raw = MessageSkeleton(
        subject="Weekly", html="<p>Hi</p>", text="Hi", from_address="News <news@example.org>",
        list_info=list_info,
    ).personalise(
        Recipient(
            email="ada@example.com", name="Ada", unsubscribe_url="https://news.example.org/u/1",
            manage_url="https://news.example.org/m/1", message_id="1@example.org",
        )
    )
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return raw.split(b"\r\n\r\n", 1)[0], message


@pytest.mark.parametrize("name", INJECTIONS)
def test_a_list_name_can_neither_add_a_header_nor_change_the_list_id(name: str) -> None:
    head, message = headers_of(ListInfo("news.example.org", "mailto:u@example.org", name))
    assert message.get_all("List-Id") is not None and len(message.get_all("List-Id")) == 1
    assert str(message["List-Id"]).endswith(" <news.example.org>")
    assert "Evil" in str(message["List-Id"])  # the name is still there, as a name
    assert message["Bcc"] is None
    field_names = [
        line.split(b":", 1)[0] for line in head.split(b"\r\n") if not line.startswith((b" ", b"\t"))
    ]
    assert b"Bcc" not in field_names and field_names.count(b"List-Id") == 1
    assert b"\n" not in head.replace(b"\r\n", b"") and b"\r" not in head.replace(b"\r\n", b"")
    assert message.defects == []


def test_a_list_name_outside_ascii_is_written_as_encoded_words() -> None:
    head, message = headers_of(ListInfo("news.example.org", "mailto:u@example.org", "Ünï Nëws"))
    assert head.isascii()
    assert b"List-Id: =?utf-8?" in head
    assert str(message["List-Id"]) == "Ünï Nëws <news.example.org>"


def test_without_a_name_the_list_id_stands_alone() -> None:
    _, message = headers_of(ListInfo("news.example.org", "mailto:u@example.org"))
    assert str(message["List-Id"]) == "<news.example.org>"


def test_the_list_id_keeps_only_what_an_id_may_hold() -> None:
    _, message = headers_of(ListInfo("<news>\r\nBcc: x@y.example", "mailto:u@example.org"))
    assert message["Bcc"] is None
    assert str(message["List-Id"]) == "<newsBccxy.example>"


def test_an_issue_to_a_list_with_a_hostile_name_sends_a_clean_list_id(
    app: Flask, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    news = make_list("news", name="Evil\r\nBcc: victim@example.net <list@evil.example>")
    make_subscriber("ada@example.com", lists=(news,))
    issue = make_issue((make_statement(),), (news,))
    dispatcher.request_send(issue.id)
    run_jobs()
    [captured] = mailbox.messages
    assert captured.recipients == ["ada@example.com"]
    assert captured.message["Bcc"] is None
    assert str(captured.message["List-Id"]).endswith(" <news.news.example.org>")


def test_a_long_list_name_is_folded_between_words_and_reads_back_whole() -> None:
    name = "Ünï " + "very long list name " * 9
    head, message = headers_of(ListInfo("news.example.org", "mailto:u@example.org", name))
    lines = head.split(b"\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(b"List-Id:"))
    assert lines[start + 1].startswith(b" ")  # folded, between encoded words
    assert all(len(line) <= 998 for line in lines)
    assert str(message["List-Id"]) == " ".join(name.split()) + " <news.example.org>"
