"""Every personalised message is a valid RFC 5322/2045 message, whatever the input."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest
from flask import Flask

from newsletter.mail.message import ListInfo, MessageSkeleton, Recipient, make_message_id
from newsletter.mail.render import PLACEHOLDERS, render_issue
from tests.factories import make_issue, make_list, make_statement

NAME, UNSUB, MANAGE = (PLACEHOLDERS[k] for k in ("name", "unsubscribe_url", "manage_url"))

NAMES = [
    'Ada "the" Lovelace, Jr.',
    "back\\slash \\\" quote",
    "Zoë 😀 Ünïcode",
    "x" * 200,
    "word " * 40,
    "É" * 200,
    "",
    "a,b;c:d@e",
    "=?utf-8?q?Mallory?=",
    "O'Brien (the <boss>)",
]
SUBJECTS = ["Plain", "Ünïcödé — with émoji 🎉 " * 10, "x" * 300]


def _body(kind: str) -> str:
    """Bodies with the hard cases: lines far over 998 octets (as mjml writes them), trailing
    whitespace, a line of exactly 76 characters before a placeholder, dots and = signs."""
    long_line = '<td style="padding:0">' + "a" * 3000 + "</td>"
    return (
        f"{long_line}<p>Hello {NAME},</p>\n"
        + "a" * 74 + "\t\n" + " " * 80 + "\n"
        + "b" * 76 + NAME + "\n"
        + "=" * 30 + " . \n.\n"
        + "ü" * 40 + f'<a href="{UNSUB}">x</a>' + "c" * 76 + f"{MANAGE}\n"
        + ("Wörds and = signs. " * 80 if kind == "html" else "end ")
    )


def _skeleton(subject: str) -> MessageSkeleton:
    return MessageSkeleton(
        subject=subject,
        html=_body("html"),
        text=_body("text"),
        from_address="Ëxample Néws <news@exämple.org>",
        list_info=ListInfo("news.example.org", "mailto:news@example.org", "Ünï News"),
    )


def _recipient(name: str, email_address: str = "reader@bücher.example") -> Recipient:
    return Recipient(
        email=email_address,
        name=name,
        unsubscribe_url="https://news.example.org/unsubscribe/" + "t" * 150 + "?a=1&b=2",
        manage_url="https://news.example.org/manage/" + "m" * 90,
        message_id=make_message_id("Ëxample <news@exämple.org>"),
    )


def _strict(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.strict)
    assert isinstance(message, EmailMessage)
    for part in message.walk():
        assert part.defects == []
    for key in message.keys():
        assert getattr(message[key], "defects", ()) == (), key
    return message


@pytest.mark.parametrize("subject", SUBJECTS)
@pytest.mark.parametrize("name", NAMES)
def test_every_message_is_strictly_valid_with_short_lines(subject: str, name: str) -> None:
    data = _skeleton(subject).personalise(_recipient(name))
    message = _strict(data)

    assert data.isascii()
    head, _, body = data.partition(b"\r\n\r\n")
    # RFC 5322 §2.1.1: 78 (a URL in List-Unsubscribe cannot be folded; 998 is the hard limit)
    for line in head.split(b"\r\n"):
        assert len(line) <= (998 if line.startswith(b"List-Unsubscribe: <http") else 78), line
    # RFC 2045 §6.7 (5): quoted-printable lines are at most 76 characters.
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert message["Subject"] == " ".join(subject.split())
    # CPython keeps the (ignorable, RFC 2047 §6.2) space between two encoded words of a
    # display name; it does the same for names that it encodes itself.
    shown = message["To"].addresses[0].display_name
    assert shown.replace(" ", "") == name.replace(" ", "")
    assert message["To"].addresses[0].domain == "xn--bcher-kva.example"
    assert message["Message-ID"].endswith("@xn--exmple-cua.org>")
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    greeting = " ".join(name.split()) or "friend"
    assert "b" * 76 + greeting in text.get_content()
    assert "a" * 3000 in html.get_content()


def test_a_name_that_looks_like_an_encoded_word_is_shown_as_written() -> None:
    message = _strict(_skeleton("Hi").personalise(_recipient("=?utf-8?q?Mallory?=")))
    assert message["To"].addresses[0].display_name == "=?utf-8?q?Mallory?="


def test_a_statement_quoting_a_placeholder_breaks_nothing(app: Flask) -> None:
    """Decision: the placeholders are reserved words. A statement that happens to contain one
    gets the reader's value there (escaped in HTML), and the message stays valid."""
    statement = make_statement(body=f"Write {NAME} and <b>{UNSUB}</b> in a mail merge.")
    issue = make_issue((statement,), (make_list("news"),))
    rendered = render_issue(issue)
    skeleton = MessageSkeleton(
        subject=rendered.subject, html=rendered.html, text=rendered.text,
        from_address="news@example.org",
        list_info=ListInfo("news.example.org", "mailto:news@example.org"),
    )  # fmt: skip

    message = _strict(skeleton.personalise(_recipient('<i>"Eve"</i>', "eve@example.org")))
    html = message.get_body(("html",))
    assert html is not None
    assert "<i>" not in html.get_content() and "&lt;i&gt;" in html.get_content()
