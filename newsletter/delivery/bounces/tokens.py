"""Candidate return-path tokens: the ``TOKEN`` of ``bounces+TOKEN@domain`` addresses.

Only candidates: the intake verifies each one's signature. They are looked for where the
envelope sender we used comes back, in order of trust: the envelope recipient the MTA gave
the intake; the outer headers a local delivery writes from it (``Delivered-To``,
``X-Original-To``, ``Envelope-To``); the returned message's ``X-Newsletter-Delivery`` and
``Return-Path`` (in a ``message/rfc822`` or ``text/rfc822-headers`` part, or quoted in a
plain-text bounce); an ARF report's ``Original-Mail-From``; last the outer ``To``. Never
from the returned ``To``: that is the reader's address, which may well have a ``+`` of its
own.
"""

from __future__ import annotations

import re
from email.message import Message

from newsletter.delivery.bounces import reading

#: a tagged address: the local part's tag is the token
_TAGGED = re.compile(r"[A-Za-z0-9._%=-]+\+([A-Za-z0-9._=~-]{1,512})@[A-Za-z0-9.-]+")
#: a bare token (``X-Newsletter-Delivery`` may carry one without an address)
_BARE = re.compile(r"^[A-Za-z0-9._=~-]{8,512}$")
#: returned headers quoted in a plain-text bounce (Exim, qmail: "a copy of the message")
_QUOTED = re.compile(
    r"^(return-path|x-newsletter-delivery)[ \t]*:[ \t]*(.{1,600})$",
    re.IGNORECASE | re.MULTILINE,
)
_DELIVERY_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")


def token_of(address: str) -> str | None:
    """The TOKEN of a ``local+TOKEN@domain`` return path, or None."""
    local = address.strip().strip("<>").rpartition("@")[0]
    if "+" not in local:
        return None
    return local.split("+", 1)[1] or None


def candidates(
    message: Message,
    *,
    envelope_recipient: str | None,
    returned: list[Message],
    report_mail_from: str = "",
    body: str = "",
) -> list[tuple[str, str]]:
    """Each distinct candidate token with where it was found (``envelope``, ``delivered-to``,
    ``returned``, ``report``, ``to``), most trusted first."""
    found: list[tuple[str, str]] = []

    def add(values: list[str], source: str) -> None:
        for value in values:
            for token in _tokens_in(value):
                if token not in (known for known, _source in found):
                    found.append((token, source))

    if envelope_recipient:
        token = token_of(envelope_recipient[: reading.MAX_HEADER])
        if token:
            found.append((token, "envelope"))
    for name in _DELIVERY_HEADERS:
        add(reading.headers(message, name), "delivered-to")
    for inner in returned:
        add(_bare_or_tagged(reading.headers(inner, "X-Newsletter-Delivery")), "returned")
        add(reading.headers(inner, "Return-Path"), "returned")
    quoted = [(name.lower(), value) for name, value in _QUOTED.findall(body[: reading.MAX_TEXT])]
    add(_bare_or_tagged([v for n, v in quoted[:10] if n == "x-newsletter-delivery"]), "returned")
    add([value for name, value in quoted[:10] if name == "return-path"], "returned")
    add([report_mail_from], "report")
    add(reading.headers(message, "To"), "to")
    return found[:20]


def _tokens_in(value: str) -> list[str]:
    return [match.group(1) for match in _TAGGED.finditer(value[: reading.MAX_HEADER])][:10]


def _bare_or_tagged(values: list[str]) -> list[str]:
    """``X-Newsletter-Delivery`` values as addresses: a bare token is made into one."""
    return [f"x+{value.strip()}@x" if _BARE.match(value.strip()) else value for value in values]
