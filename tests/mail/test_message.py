"""The MIME skeleton: built once, personalised per recipient, parsed back by the stdlib."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from newsletter.mail.message import build_simple_message, make_message_id
from newsletter.mail.render import PLACEHOLDERS
from tests.mail.helpers import HTML, TEXT, recipient, skeleton

# Runs once, in the embedded pass (Makefile): what is tested here does not depend on the
# database or broker.
pytestmark = pytest.mark.once


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    return (
        plain.get_content().replace("\r\n", "\n"),
        html.get_content().replace("\r\n", "\n"),
    )


def expected(source: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        source = source.replace(PLACEHOLDERS[key], value)
    return source


def test_every_header_is_there() -> None:
    message = parse(skeleton().personalise(recipient(7)))

    assert message["From"] == "Example News <news@example.org>"
    assert message["To"] == "Reader 7 <reader7@example.com>"
    assert message["Subject"] == "Weekly news"
    assert message["Date"].datetime is not None
    assert message["Message-ID"] == "<id7@example.org>"
    assert message["MIME-Version"] == "1.0"
    assert message["List-Id"] == "MACC News <news.example.org>"
    assert message["List-Unsubscribe"] == (
        "<https://news.example.org/unsubscribe/tok7?a=1&b=2>, "
        "<mailto:unsubscribe@example.org?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Precedence"] == "bulk"
    assert message.get_content_type() == "multipart/alternative"
    assert message.defects == []


def test_body_is_text_then_html_with_everything_filled() -> None:
    message = parse(skeleton().personalise(recipient(3, name='Ann "the <b>" & Co')))

    types = [part.get_content_type() for part in message.iter_parts()]
    assert types == ["text/plain", "text/html"]
    for part in message.iter_parts():
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.defects == []
    text, html = parts(message)

    assert text.rstrip("\n") == expected(TEXT, {
        "name": 'Ann "the <b>" & Co',
        "unsubscribe_url": "https://news.example.org/unsubscribe/tok3?a=1&b=2",
        "manage_url": "https://news.example.org/manage/m3",
    }).rstrip("\n")  # fmt: skip
    assert html.rstrip("\n") == expected(HTML, {
        "name": "Ann &quot;the &lt;b&gt;&quot; &amp; Co",
        "unsubscribe_url": "https://news.example.org/unsubscribe/tok3?a=1&amp;b=2",
        "manage_url": "https://news.example.org/manage/m3",
    }).rstrip("\n")  # fmt: skip


def test_raw_message_is_clean_smtp_data() -> None:
    data = skeleton(subject="Ünïcödé " * 20).personalise(recipient(name="Zoë " * 30))

    assert data.isascii()  # QP bodies and RFC 2047 headers
    lines = data.split(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in lines) <= 78
    assert b"%%NL-" not in data


def test_two_recipients_differ_only_where_they_should() -> None:
    built = skeleton()
    first = parse(built.personalise(recipient(1)))
    second = parse(built.personalise(recipient(2)))

    personal = {"To", "Message-ID", "List-Unsubscribe", "Date"}
    for header in set(first.keys()) | set(second.keys()):
        if header not in personal:
            assert first[header] == second[header], header
    assert first["To"] != second["To"] and first["Message-ID"] != second["Message-ID"]

    def neutral(message: EmailMessage, number: int) -> tuple[str, str]:
        text, html = parts(message)
        for value in (
            f"Reader {number}", f"tok{number}", f"m{number}",
        ):  # fmt: skip
            text, html = text.replace(value, "X"), html.replace(value, "X")
        return text, html

    assert neutral(first, 1) == neutral(second, 2)


def test_non_ascii_names_and_subject_are_rfc2047_encoded() -> None:
    data = skeleton(subject="Ça bouge — 🚩").personalise(
        recipient(name="Zoë Ångström", email="zoe@exämple.org")
    )
    message = parse(data)

    assert b"=?utf-8?" in data
    assert message["Subject"] == "Ça bouge — 🚩"
    assert message["To"].addresses[0].display_name == "Zoë Ångström"
    assert message["To"].addresses[0].domain == "xn--exmple-cua.org"


@pytest.mark.parametrize(
    "name",
    [
        "Eve\r\nBcc: victim@example.org",
        "Eve\nX-Injected: yes",
        "Eve\rX-Injected: yes",
        "Évé\r\nBcc: victim@example.org",
        "Eve\u2028X-Injected: yes",
    ],
)
def test_header_injection_through_the_name_is_impossible(name: str) -> None:
    data = skeleton().personalise(
        recipient(name=name, message_id="x@example.org\r\nX-Injected: id")
    )
    message = parse(data)

    assert message["Bcc"] is None and message["X-Injected"] is None
    assert message["To"].addresses[0].username == "reader1"
    assert "\n" not in message["To"].addresses[0].display_name
    text, _ = parts(message)
    assert "Hello Eve" in text or "Hello Évé" in text


def test_subject_with_newlines_stays_one_header() -> None:
    message = parse(skeleton(subject="Hi\r\nBcc: victim@example.org").personalise(recipient()))
    assert message["Bcc"] is None
    assert message["Subject"] == "Hi Bcc: victim@example.org"


def test_empty_name_gives_bare_address_and_a_friendly_greeting() -> None:
    message = parse(skeleton().personalise(recipient(name="")))
    assert message["To"] == "reader1@example.com"
    assert "Hello friend," in parts(message)[0]


def test_make_message_id_is_unique_on_the_from_domain() -> None:
    ids = {make_message_id("Example News <news@example.org>") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.endswith("@example.org") and "<" not in i for i in ids)


def test_simple_message_for_one_off_mails() -> None:
    data = build_simple_message(
        to="Zoë <zoe@example.com>",
        subject="Please confirm",
        text="Open https://news.example.org/confirm/abc",
        html='<p><a href="https://news.example.org/confirm/abc">Confirm</a></p>',
        from_address="Example News <news@example.org>",
    )
    message = parse(data)

    assert message["To"].addresses[0].display_name == "Zoë"
    assert message["From"] == "Example News <news@example.org>"
    assert message["Subject"] == "Please confirm"
    assert message["Date"] and message["Message-ID"].endswith("@example.org>")
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = parts(message)
    assert "https://news.example.org/confirm/abc" in text and "Confirm</a>" in html
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_simple_message_text_only_and_no_injection() -> None:
    data = build_simple_message(
        to="victim@example.com\r\nBcc: other@example.com",
        subject="Hi\nBcc: other@example.com",
        text="Just text",
        html=None,
        from_address="news@example.org",
    )
    message = parse(data)
    assert message["Bcc"] is None
    assert message.get_content_type() == "text/plain"


def test_a_one_off_message_to_a_non_ascii_mailbox_has_a_utf8_to_header() -> None:
    data = build_simple_message(
        to='"Jörg, der Erste" <jörg@exämple.org>', subject="Hallo", text="Hi", html=None,
        from_address="News <news@example.org>",
    )  # fmt: skip
    parsed = email.message_from_string(data.decode("utf-8"), policy=email.policy.SMTPUTF8)
    [address] = parsed["To"].addresses
    assert (address.display_name, address.username, address.domain) == (
        "Jörg, der Erste", "jörg", "xn--exmple-cua.org",
    )  # fmt: skip
    assert not parsed.defects
