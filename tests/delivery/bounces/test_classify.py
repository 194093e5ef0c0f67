"""The bounce classifier, on samples of our own (``tests/data/bounces``): what each report is,
about whom, and which return-path token it carries; and that no bytes at all make it raise.

Classifying is pure (no database, no broker), so these tests need neither.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.delivery.bounces import status
from newsletter.delivery.bounces.classify import Classification, classify, token_of

# Runs once, in the embedded pass (Makefile): what is tested here does not depend on the
# database or broker.
pytestmark = pytest.mark.once


SAMPLES = Path(__file__).resolve().parents[2] / "data" / "bounces"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


# file, kind, recipients, token, where the token was found, which reader decided
EXPECTED = [
    ("postfix-hard-5.1.1.eml", "hard", ["alice.nobody@example.com"],
     "d1.a8Fk2Lq9ZxW3", "delivered-to", "dsn"),
    ("postfix-soft-4.2.2-gave-up.eml", "soft", ["bruno@mail.example.net"],
     "d2.Yt7pQe0mN4sB", "to", "dsn"),
    ("postfix-delayed.eml", "ignored", [], "d2.Yt7pQe0mN4sB", "to", "dsn"),
    ("sendmail-5.2.2-mailbox-full.eml", "soft", ["carla.ruiz@example.edu"],
     "d3.Hq2wE5rT8yU1", "returned", "dsn"),
    ("postfix-multi-recipient.eml", "hard",
     ["dmitri@example.com", "elena@example.com", "greta@example.com"],
     "d4.Lm6nB3vC9xZ2", "returned", "dsn"),
    ("gmail-5.1.1.eml", "hard", ["hannah.doesnotexist@gmail.example"],
     "d5.Pq4rS7tU0vW3", "delivered-to", "dsn"),
    ("exchange-online-5.1.10.eml", "hard", ["ivan.petrov@contoso.example"],
     "d6.Zu8iO1pA4sD7", "returned", "dsn"),
    ("exchange-2003-ndr.eml", "hard", ["jana.novakova@corp.example"],
     "d7.Xc5vB8nM1qW4", "returned", "flufl"),
    ("exim-plain.eml", "hard", ["frank.mueller@example.net"],
     "d8.Rf3gH6jK9lZ2", "delivered-to", "flufl"),
    ("postfix-plain-text.eml", "hard", ["olga@old.example.co"],
     "d16.Op8aS1dF4gH7", "to", "flufl"),
    ("qmail.eml", "hard", ["gustav@example.info"], "d9.Nb2vC5xZ8aS1", "returned", "flufl"),
    ("arf-abuse-yahoo.eml", "complaint", ["inge.larsen@yahoo.example"],
     "d10.Qa1sW4eD7rF0", "report", "arf"),
    ("arf-headers-only.eml", "complaint", ["jon.smith+news@isp.example"],
     "d11.Ws3eD6rF9tG2", "returned", "arf"),
    ("microsoft-jmrp.eml", "complaint", ["karin.berg@outlook.example"],
     "d12.Ed4rF7tG0yH3", "returned", "arf"),
    ("out-of-office-auto-submitted.eml", "ignored", [],
     "d13.Rt5yU8iO1pA4", "delivered-to", "autoreply"),
    ("vacation-x-autoreply.eml", "ignored", [], "d14.Yh6uJ9kL2zX5", "delivered-to", "autoreply"),
    ("human-reply.eml", "unreadable", [], "d15.Ui7oP0aS3dF6", "delivered-to", None),
    ("garbage.bin", "unreadable", [], None, None, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "kind", "recipients", "token", "token_source", "detector"),
    EXPECTED,
    ids=[row[0] for row in EXPECTED],
)
def test_each_sample_classifies_as_a_reader_would(
    name: str,
    kind: str,
    recipients: list[str],
    token: str | None,
    token_source: str | None,
    detector: str | None,
) -> None:
    result = classify(sample(name))

    assert result.kind == kind, result.reason
    assert list(result.recipients) == recipients
    assert result.token == token
    assert result.details.get("token_source") == token_source
    assert result.details.get("detector") == detector
    assert result.reason
    assert len(result.reason) <= 1000


def test_every_sample_file_is_expected() -> None:
    assert sorted(path.name for path in SAMPLES.iterdir()) == sorted(row[0] for row in EXPECTED)


def test_the_samples_keep_their_subject() -> None:
    assert classify(sample("gmail-5.1.1.eml")).subject == "Delivery Status Notification (Failure)"
    assert (
        classify(sample("vacation-x-autoreply.eml")).subject
        == "Respuesta automática: The December issue"
    )


def test_a_bounce_says_why() -> None:
    result = classify(sample("postfix-hard-5.1.1.eml"))

    assert result.details["status"] == "5.1.1"
    assert "User unknown in virtual mailbox table" in result.reason
    assert result.details["reporting_mta"] == "mail.news.example.org"
    (failure,) = result.failures
    assert (failure.recipient, failure.severity, failure.status) == (
        "alice.nobody@example.com",
        "hard",
        "5.1.1",
    )


# -- the token -------------------------------------------------------------------------


def test_the_envelope_recipient_comes_before_any_header() -> None:
    result = classify(
        sample("postfix-hard-5.1.1.eml"),
        envelope_recipient="bounces+from.the.envelope@news.example.org",
    )

    assert result.token == "from.the.envelope"
    assert result.details["token_source"] == "envelope"
    # the others stay candidates, for the intake to try when the first does not verify
    assert result.tokens == ("from.the.envelope", "d1.a8Fk2Lq9ZxW3")


def test_a_reader_address_with_a_plus_is_never_taken_for_a_token() -> None:
    result = classify(sample("arf-headers-only.eml"))

    assert "news" not in result.tokens
    assert result.tokens == ("d11.Ws3eD6rF9tG2",)


def test_the_token_of_a_plain_text_bounce_comes_from_the_copy_it_quotes() -> None:
    raw = sample("exim-plain.eml")
    # as forwarded from another mailbox: no envelope headers left, the outer To not ours
    raw = re.sub(rb"(?m)^(Envelope-to|To|Received|\tfor |\tid |\tTue).*\n", b"", raw, count=0)
    raw = raw.replace(b"From: Mail", b"To: postmaster@news.example.org\nFrom: Mail", 1)

    result = classify(raw)

    assert result.kind == "hard"
    assert result.token == "d8.Rf3gH6jK9lZ2"
    assert result.details["token_source"] == "returned"


def test_a_bare_x_newsletter_delivery_token_is_a_candidate() -> None:
    result = classify(sample("postfix-multi-recipient.eml"))

    assert result.tokens[0] == "d4.Lm6nB3vC9xZ2"
    assert result.details["token_source"] == "returned"


@pytest.mark.parametrize(
    ("address", "token"),
    [
        ("bounces+abc.def@news.example.org", "abc.def"),
        ("<bounces+abc@news.example.org>", "abc"),
        ("bounces@news.example.org", None),
        ("bounces+@news.example.org", None),
        ("", None),
    ],
)
def test_token_of(address: str, token: str | None) -> None:
    assert token_of(address) == token


# -- DSNs ------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["delayed", "delivered", "relayed", "expanded"])
def test_only_a_failed_action_is_a_bounce(action: str) -> None:
    raw = sample("postfix-hard-5.1.1.eml").replace(b"Action: failed", f"Action: {action}".encode())

    result = classify(raw)

    assert result.kind == "ignored"
    assert result.recipients == ()
    assert action in result.reason


def test_the_delayed_then_failed_recipient_of_a_multi_recipient_report_is_left_out() -> None:
    result = classify(sample("postfix-multi-recipient.eml"))

    assert "farid@example.com" not in result.recipients
    assert [f.reason for f in result.failures][0] == 'X-Postfix; unknown user: "dmitri"'


def test_recipients_failing_in_different_ways_are_soft_each_with_its_own_severity() -> None:
    raw = sample("postfix-multi-recipient.eml").replace(
        b"Status: 5.1.1\nRemote-MTA: dns; imap.example.com\nDiagnostic-Code: smtp; 550 5.1.1",
        b"Status: 5.2.2\nRemote-MTA: dns; imap.example.com\nDiagnostic-Code: smtp; 552 5.2.2",
    )

    result = classify(raw)

    # a hard bounce stops mail to every address named: only when each one is hard
    assert result.kind == "soft"
    assert {f.recipient: f.severity for f in result.failures} == {
        "dmitri@example.com": "hard",
        "elena@example.com": "soft",
        "greta@example.com": "hard",
    }


def test_a_dsn_is_a_bounce_even_when_its_subject_reads_like_an_auto_reply() -> None:
    raw = sample("postfix-hard-5.1.1.eml").replace(
        b"Subject: Undelivered Mail Returned to Sender", b"Subject: Automatic reply: Out of office"
    )

    assert classify(raw).kind == "hard"


def test_a_delivery_report_nobody_can_read_is_kept_not_ignored_as_an_auto_reply() -> None:
    raw = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\n"
        b"To: bounces+tok123@news.example.org\n"
        b"Subject: Mail delivery failed: returning message to sender\n"
        b"Auto-Submitted: auto-replied\n\n"
        b"Something went wrong somewhere, we will not tell you for whom.\n"
    )

    result = classify(raw)

    assert result.kind == "unreadable"
    assert result.token == "tok123"


def test_a_dsn_in_an_unknown_charset_still_reads() -> None:
    raw = (
        sample("postfix-hard-5.1.1.eml")
        .replace(b"charset=us-ascii", b"charset=x-no-such-charset")
        .replace(b"The mail system", "Le système de courrier".encode("latin-1"))
    )

    result = classify(raw)

    assert (result.kind, result.recipients) == ("hard", ("alice.nobody@example.com",))


@pytest.mark.parametrize(
    ("code", "diagnostic", "severity"),
    [
        ("5.1.1", "550 5.1.1 user unknown", "hard"),
        ("5.1.10", "550 5.1.10 RESOLVER.ADR.RecipientNotFound", "hard"),
        ("5.2.1", "550 5.2.1 The email account that you tried to reach is disabled", "hard"),
        ("5.2.2", "552 5.2.2 mailbox full", "soft"),
        ("5.3.4", "552 5.3.4 message too big", "soft"),
        ("5.4.7", "delivery time expired", "soft"),
        ("4.4.1", "connection refused", "soft"),
        ("4.2.2", "over quota", "soft"),
        ("5.0.0", "550 Mailbox is full", "soft"),
        ("5.1.1", "550 5.1.1 Mailbox full of nonsense: user unknown", "hard"),
        ("5.7.1", "550 5.7.1 Message rejected as spam", "soft"),
        ("5.7.1", "550 5.7.1 Service unavailable; client host blocked using Spamhaus", "soft"),
        ("5.7.1", "550 5.7.1 <x@y>: Recipient address rejected: Access denied", "hard"),
        ("5.7.26", "550 5.7.26 unauthenticated email from news.example.org", "soft"),
        ("", "smtp; 550 no such user", "hard"),
        ("", "smtp; 452 too many recipients", "soft"),
        ("", "", "hard"),
    ],
)
def test_what_a_status_code_and_its_diagnostic_make_of_a_failed_recipient(
    code: str, diagnostic: str, severity: str
) -> None:
    assert status.severity(code, diagnostic) == severity


# -- non-standard bounces --------------------------------------------------------------


def test_a_plain_text_bounce_for_a_full_mailbox_is_soft() -> None:
    raw = sample("exim-plain.eml").replace(
        b"550 5.1.1 <frank.mueller@example.net>: Recipient address rejected: User unknown in "
        b"local recipient table",
        b"552 5.2.2 <frank.mueller@example.net>: Mailbox quota exceeded",
    )

    result = classify(raw)

    assert (result.kind, result.recipients) == ("soft", ("frank.mueller@example.net",))
    assert result.details["status"] == "5.2.2"


def test_a_plain_text_warning_that_delivery_goes_on_is_ignored() -> None:
    raw = (
        b"From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\n"
        b"To: bounces+warn1@news.example.org\n"
        b"Subject: Delivery Status Notification (Delay)\n\n"
        b"This is an automatically generated Delivery Status Notification\n\n"
        b"THIS IS A WARNING MESSAGE ONLY.\n\n"
        b"YOU DO NOT NEED TO RESEND YOUR MESSAGE.\n\n"
        b"Delivery to the following recipient has been delayed:\n\n"
        b"     lars@example.org\n\n"
        b"Message will be retried for 2 more day(s)\n"
    )

    result = classify(raw)

    assert (result.kind, result.recipients, result.token) == ("ignored", (), "warn1")


# -- complaints ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feedback_type", "kind"),
    [("abuse", "complaint"), ("fraud", "complaint"), ("virus", "complaint"),
     ("other", "complaint"), ("something-new", "complaint"),
     ("not-spam", "ignored"), ("auth-failure", "ignored")],
)  # fmt: skip
def test_what_each_feedback_type_is(feedback_type: str, kind: str) -> None:
    raw = sample("arf-abuse-yahoo.eml").replace(
        b"Feedback-Type: abuse", f"Feedback-Type: {feedback_type}".encode()
    )

    result = classify(raw)

    assert result.kind == kind
    assert result.details["feedback_type"] == feedback_type


def test_a_redacted_original_rcpt_to_falls_back_to_the_returned_to() -> None:
    raw = sample("arf-abuse-yahoo.eml").replace(
        b"Original-Rcpt-To: <inge.larsen@yahoo.example>", b"Original-Rcpt-To: [redacted]"
    )

    assert classify(raw).recipients == ("inge.larsen@yahoo.example",)


def test_a_bounce_returning_a_message_marked_by_outlook_is_no_complaint() -> None:
    raw = sample("exchange-online-5.1.10.eml").replace(
        b"Return-Path: bounces+d6",
        b"X-HmXmrOriginalRecipient: <ivan.petrov@contoso.example>\nReturn-Path: bounces+d6",
    )

    assert classify(raw).kind == "hard"


# -- auto-replies ----------------------------------------------------------------------


def _reply(*headers: str, subject: str = "Re: The December issue") -> bytes:
    lines = [
        "From: Someone <someone@example.org>",
        "To: bounces+auto1@news.example.org",
        f"Subject: {subject}",
        *headers,
        "Content-Type: text/plain; charset=utf-8",
        "",
        "I am away.",
    ]
    return "\n".join(lines).encode()


@pytest.mark.parametrize(
    "raw",
    [
        _reply("Auto-Submitted: auto-replied"),
        _reply("Auto-Submitted: auto-generated"),
        _reply("X-Autoreply: yes"),
        _reply("X-Autorespond: Out of office"),
        _reply("Precedence: auto_reply"),
        _reply("Precedence: bulk", subject="Out of Office: The December issue"),
        _reply("Precedence: junk", subject="Abwesenheitsnotiz: The December issue"),
        _reply(subject="Automatic reply: The December issue"),
        _reply(subject="=?utf-8?q?Respuesta_autom=C3=A1tica=3A_The_December_issue?="),
        _reply(subject="Réponse automatique : The December issue"),
        _reply(subject="AW: Abwesenheit bis 4.1."),
        _reply(subject="Jane Doe is out of the office."),
    ],
    ids=[
        "auto-replied", "auto-generated", "x-autoreply", "x-autorespond", "precedence-auto_reply",
        "bulk-out-of-office", "junk-abwesenheitsnotiz", "automatic-reply", "respuesta-automatica",
        "reponse-automatique", "aw-abwesenheit", "lotus-out-of-the-office",
    ],
)  # fmt: skip
def test_automatic_answers_are_ignored(raw: bytes) -> None:
    result = classify(raw)

    assert (result.kind, result.recipients, result.token) == ("ignored", (), "auto1")
    assert result.details["detector"] == "autoreply"


@pytest.mark.parametrize(
    "raw",
    [
        _reply("Auto-Submitted: no"),
        _reply("Precedence: bulk"),
        _reply(subject="Re: The December issue"),
    ],
    ids=["auto-submitted-no", "bulk-alone", "plain-reply"],
)
def test_a_person_writing_back_is_kept_for_an_editor(raw: bytes) -> None:
    assert classify(raw).kind == "unreadable"


def test_only_the_outer_headers_make_an_auto_reply() -> None:
    # the human reply quotes nothing of ours, but a forward of our message carries our own
    # Auto-Submitted: auto-generated inside it
    raw = (
        b"From: Nora <nora@example.se>\nTo: bounces+fwd1@news.example.org\n"
        b"Subject: Fwd: The December issue\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
        b"Look at this.\n--b\nContent-Type: message/rfc822\n\n"
        b"From: Example News <news@news.example.org>\nAuto-Submitted: auto-generated\n"
        b"Subject: The December issue\n\nHello\n--b--\n"
    )

    assert classify(raw).kind == "unreadable"


# -- garbage ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"\x00" * 1000,
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n",
        b"Content-Type: multipart/mixed; boundary=\n\n--\n--\n",
        b"Subject: =?utf-8?b?////?=\nContent-Transfer-Encoding: base64\n\n!!!!",
        b"Content-Type: message/delivery-status\n\nAction: failed\n\n\n",
        "Subject: ünïcödé without encoding\nFrom: \udcff\n\n".encode("utf-8", "surrogateescape"),
        b"".join(b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i)
                 for i in range(3000)),
        b"From: MAILER-DAEMON@x\nSubject: Undelivered\n\n" + b"x\n" * 1_000_000,
        b"X-A: b\n" * 300_000 + b"\nbody",
    ],
    ids=["empty", "blank", "nul", "report-no-parts", "empty-boundary", "bad-base64",
         "bare-status", "raw-8bit-headers", "deep-nesting", "million-lines", "many-headers"],
)  # fmt: skip
def test_garbage_is_unreadable_quickly(raw: bytes) -> None:
    with stopped_after(10):
        result = classify(raw)

    assert result.kind == "unreadable"
    assert result.reason
    assert not result.reason.startswith("the message could not be read"), result.reason


def test_a_truncated_report_still_names_what_it_got_to() -> None:
    raw = sample("gmail-5.1.1.eml")
    cut = raw[: raw.index(b"Last-Attempt-Date")]

    result = classify(cut)

    assert (result.kind, result.recipients) == ("hard", ("hannah.doesnotexist@gmail.example",))


# -- properties ------------------------------------------------------------------------

KINDS = {"hard", "soft", "complaint", "ignored", "unreadable"}
ALL_SAMPLES = [sample(row[0]) for row in EXPECTED]
BOUND = timedelta(seconds=3)
PROPERTY = settings(
    max_examples=150,
    deadline=BOUND,
    # in CI the same examples every run (a red build is a finding to reproduce)
    derandomize=bool(os.environ.get("CI")),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class TookTooLong(AssertionError):
    """Still classifying long after the bound: a bomb fails the test instead of hanging it."""


@contextmanager
def stopped_after(seconds: float) -> Iterator[None]:
    def stop(signum: int, frame: Any) -> None:
        raise TookTooLong(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _sane(result: Classification) -> None:
    assert isinstance(result, Classification)
    # read by the readers themselves, not saved by the last-resort catch in classify()
    assert not result.reason.startswith("the message could not be read"), result.reason
    assert result.kind in KINDS
    assert result.reason
    assert all(isinstance(address, str) and "@" in address for address in result.recipients)
    assert result.token is None or result.token == result.tokens[0]
    assert len(result.subject) <= 998


@PROPERTY
@given(st.binary(max_size=20_000))
def test_classify_never_raises_on_any_bytes(raw: bytes) -> None:
    with stopped_after(2 * BOUND.total_seconds()):
        _sane(classify(raw, envelope_recipient="bounces+prop@news.example.org"))


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    """A sample with a few bytes flipped, cut, repeated or inserted."""
    raw = bytearray(draw(st.sampled_from(ALL_SAMPLES)))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        if not raw:
            break
        at = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        how = draw(st.sampled_from(["flip", "cut", "repeat", "insert", "delete"]))
        if how == "flip":
            raw[at] = draw(st.integers(min_value=0, max_value=255))
        elif how == "cut":
            del raw[at:]
        elif how == "repeat":
            end = min(len(raw), at + draw(st.integers(min_value=1, max_value=200)))
            raw[at:at] = raw[at:end] * draw(st.integers(min_value=1, max_value=50))
        elif how == "insert":
            raw[at:at] = draw(
                st.sampled_from(
                    [b"\n", b"\n\n", b"--", b"=?utf-8?q?", b"(", b"<", b"\x00", b"\xff\xfe",
                     b"Content-Type: multipart/mixed; boundary=x\n", b"Action: failed\n",
                     b"Content-Transfer-Encoding: base64\n", draw(st.binary(max_size=64))]
                )
            )  # fmt: skip
        else:
            end = min(len(raw), at + draw(st.integers(min_value=1, max_value=400)))
            del raw[at:end]
    return bytes(raw)


@PROPERTY
@given(mutated_samples())
def test_classify_never_raises_on_mutated_samples(raw: bytes) -> None:
    with stopped_after(2 * BOUND.total_seconds()):
        _sane(classify(raw))
