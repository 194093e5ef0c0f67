"""Reading a report leniently: parts, headers and text, each capped.

Bounces are written by every MTA ever shipped, and garbage reaches the bounce address too,
so nothing here trusts the message: the parse uses the ``compat32`` policy (header values
stay strings, no structured header parser runs on them), every header and text is capped
before it is decoded or matched, and the parts are walked without recursion and at most
:data:`MAX_PARTS` of them.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from email.header import Header, decode_header, make_header
from email.message import Message
from email.parser import HeaderParser

#: the bytes of a message read at all: a report says what it has to say well before this,
#: the returned message coming last (the intake caps what it accepts; this bounds the work
#: whatever an intake does)
MAX_BYTES = 1024 * 1024
#: the lines read: the parser builds objects per line (a header, a block of a delivery
#: status), and a megabyte of one-character lines is a bomb
MAX_LINES = 20_000
#: the lines that may be MIME boundaries read: a report has a dozen; thousands are a bomb
#: (each one a part for the parser to build, or a level of nesting to recurse into)
MAX_BOUNDARY_LINES = 200
#: the headers of one part kept: every look-up of a header walks them all
MAX_HEADERS = 500
#: the parts walked in one message (nested ones included)
MAX_PARTS = 200
#: the characters of one header value read
MAX_HEADER = 4000
#: the characters of one text part read
MAX_TEXT = 256 * 1024

_WHITESPACE = re.compile(r"\s+")
_BOUNDARY_LINE = re.compile(rb"^--", re.MULTILINE)


def cut(raw: bytes, limit: int, lines: int) -> bytes:
    """The first ``limit`` bytes of ``raw``, and of those the first ``lines`` lines."""
    raw = raw[:limit]
    end = -1
    for _line in range(lines):
        end = raw.find(b"\n", end + 1)
        if end < 0:
            return raw
    return raw[: end + 1]


def parse_lenient(raw: bytes, limit: int = MAX_BYTES, lines: int = MAX_LINES) -> Message:
    """``raw`` parsed with the ``compat32`` policy, cut at ``limit`` bytes, ``lines`` lines
    and before its :data:`MAX_BOUNDARY_LINES`-th boundary-like line; each part keeps its
    first :data:`MAX_HEADERS` headers."""
    raw = cut(raw, limit, lines)
    for count, match in enumerate(_BOUNDARY_LINE.finditer(raw)):
        if count == MAX_BOUNDARY_LINES:
            raw = raw[: match.start()]
            break
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    for part in parts(message):
        # compat32's Message keeps its headers in this list; trimming it is the one way to
        # bound what every later look-up costs.
        kept = getattr(part, "_headers", None)
        if isinstance(kept, list) and len(kept) > MAX_HEADERS:
            del kept[MAX_HEADERS:]
    return message


def parts(message: Message, limit: int = MAX_PARTS) -> Iterator[Message]:
    """``message`` and the parts in it, depth first, at most ``limit`` of them."""
    stack = [message]
    seen = 0
    while stack and seen < limit:
        part = stack.pop()
        seen += 1
        yield part
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))


def header(message: Message, name: str) -> str:
    """The first ``name`` header, RFC 2047 decoded, on one line, capped ("" when absent)."""
    values = headers(message, name)
    return values[0] if values else ""


def headers(message: Message, name: str) -> list[str]:
    """Every ``name`` header, as :func:`header` reads each one (at most 50 of them)."""
    return [decoded(value) for value in (message.get_all(name) or [])[:50]]


def decoded(value: object) -> str:
    """A header value (a string or an ``email.header.Header``) as one capped line of text."""
    if isinstance(value, Header):
        # Raw 8-bit bytes in a header (no RFC 2047): compat32 wraps them as unknown-8bit;
        # they are UTF-8 nearly always, else Latin-1.
        value = _eight_bit(value)
    text = str(value)[:MAX_HEADER]
    if "=?" in text:
        try:
            text = str(make_header(decode_header(text)))
        except Exception:  # noqa: BLE001 - a broken encoded word stays as it came
            pass
    return _WHITESPACE.sub(" ", text).strip()


def plain(value: object) -> str:
    """A header value as a ``str`` without the surrogates compat32 keeps raw 8-bit bytes
    as (what code expecting plain strings can handle)."""
    if isinstance(value, Header):
        return _eight_bit(value)
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        data = text.encode("utf-8", errors="surrogateescape")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    return text


def _eight_bit(value: Header) -> str:
    chunks = []
    for chunk, charset in decode_header(value):
        if isinstance(chunk, str):
            chunks.append(chunk)
            continue
        name = str(charset or "ascii")
        if name in ("unknown-8bit", "ascii", "us-ascii"):
            try:
                chunks.append(chunk.decode("utf-8"))
            except UnicodeDecodeError:
                chunks.append(chunk.decode("latin-1"))
        else:
            try:
                chunks.append(chunk.decode(name, errors="replace"))
            except LookupError:
                chunks.append(chunk.decode("latin-1"))
    return "".join(chunks)


def text_of(part: Message, limit: int = MAX_TEXT) -> str:
    """The decoded text of a leaf part, in its charset when it has a known one (else UTF-8,
    then Latin-1), errors replaced; "" for a multipart."""
    if part.is_multipart():
        return ""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - a broken transfer encoding: read it as it came
        data = None
    if not isinstance(data, bytes):
        payload = part.get_payload()
        return payload[:limit] if isinstance(payload, str) else ""
    data = data[: limit * 4]
    charset = part.get_content_charset() or "utf-8"
    try:
        text = data.decode(charset, errors="replace")
    except (LookupError, TypeError, ValueError):
        text = data.decode("utf-8", errors="replace")
    return text[:limit]


def body_text(message: Message, limit: int = MAX_TEXT) -> str:
    """The text of the message's ``text/*`` parts outside any returned message, joined."""
    chunks: list[str] = []
    size = 0
    for part in _own_parts(message):
        if part.get_content_maintype() != "text" or part.get_content_type() in _HEADER_TYPES:
            continue
        chunk = text_of(part, limit - size)
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return "\n".join(chunks)


def first_text(message: Message) -> str:
    """The first ``text/plain`` part of the message's own (the human-readable notice of a
    report), or the first ``text/*`` part when none is plain."""
    fallback = ""
    for part in _own_parts(message):
        if part.get_content_type() == "text/plain":
            return text_of(part)
        if not fallback and part.get_content_maintype() == "text":
            fallback = text_of(part)
    return fallback


#: the types a report uses to return the original message's headers alone
_HEADER_TYPES = ("text/rfc822-headers", "message/rfc822-headers")


def returned_headers(message: Message) -> list[Message]:
    """The headers of the message(s) a report returns: each ``message/rfc822`` (or
    ``message/global``) part's, and each ``text/rfc822-headers`` part's."""
    found: list[Message] = []
    for part in parts(message):
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                found.append(inner)
            elif isinstance(payload, str):
                found.append(headers_from_text(payload))
        elif kind in _HEADER_TYPES:
            found.append(headers_from_text(text_of(part, 64 * 1024)))
    return found


def headers_from_text(text: str) -> Message:
    return HeaderParser(policy=email.policy.compat32).parsestr(text[: 64 * 1024])


def _own_parts(message: Message) -> Iterator[Message]:
    """The parts of ``message`` that are not inside a returned message."""
    stack = [message]
    seen = 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        if part.get_content_maintype() == "message":
            continue  # a returned message, a delivery status: not the report's own text
        yield part
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
