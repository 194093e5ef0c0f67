"""MIME messages: a skeleton built once per issue, personalised per recipient as bytes.

Building an ``email.message.EmailMessage`` per recipient caps Python near 600 messages a
second, so an issue's message is prepared once: the constant headers as bytes, the MIME
boundaries and part headers, and both bodies quoted-printable encoded in pieces split at the
placeholders. Each piece ends in a soft line break, so a recipient's message is the constant
pieces joined with a few freshly encoded values (name, links) and four headers.
"""

from __future__ import annotations

import binascii
import email.policy
import functools
import html as html_lib
import re
import secrets
import time
from base64 import b64encode
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr

from newsletter.mail.render import SEND_PLACEHOLDERS, placeholder_values

CRLF = b"\r\n"
_SOFT_BREAK = b"=\r\n"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_ATEXT_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+$")
_NOT_DOT_ATOM = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_PLACEHOLDER_SPLIT = re.compile(
    "(" + "|".join(re.escape(value) for value in SEND_PLACEHOLDERS.values()) + ")"
)
_KEY_OF = {value: key for key, value in SEND_PLACEHOLDERS.items()}
#: the longest display name written as it is; with "List-Id: " or "To: " it fits in 78
_MAX_PLAIN_PHRASE = 66
#: RFC 2045 §6.7 (5): encoded lines are at most 76 characters, the soft break's "=" included
_QP_LINE = 76
_FEEDBACK_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str
    unsubscribe_url: str  # https URL; also the RFC 8058 one-click POST target
    manage_url: str
    message_id: str  # without angle brackets, on the From domain
    #: the open and click tracking token ("" unless the issue tracks)
    tracking: str = ""


@dataclass(frozen=True)
class ListInfo:
    list_id: str  # the RFC 2919 list-id: the list's slug and the site's host, "news.example.org"
    unsubscribe_mailto: str  # mailto: URL for List-Unsubscribe
    list_name: str = ""  # the list's name, written beside the id as a phrase of its own
    archive_url: str = ""  # List-Archive (RFC 2369): the site's archive; "": none
    help_url: str = ""  # List-Help (RFC 2369): a mailto: or https URL; "": none
    feedback_id: str = ""  # Feedback-ID for Gmail's feedback loop, "a:b:c:SenderId"; "": none


def list_id_header(name: str, list_id: str) -> str:
    """The value of ``List-Id`` (RFC 2919): ``Name <list-id>``.

    The name is encoded on its own (as it is, quoted, or RFC 2047 encoded words, folded only
    between words) and the id keeps only the characters a dot-atom may hold, so neither can
    add a header or shape the other.
    """
    identifier = ".".join(part for part in _NOT_DOT_ATOM.sub("", list_id).split(".") if part)
    identifier = f"<{identifier or 'list.invalid'}>"
    phrase = encode_phrase(name)
    if not phrase:
        return identifier
    last_line = phrase.rpartition("\n")[2]
    separator = " " if len(last_line) + len(identifier) < 70 else "\r\n "
    return f"{phrase}{separator}{identifier}"


def one_line(value: str) -> str:
    """The value with control characters (CR, LF …) gone: header injection is impossible."""
    return " ".join(_CONTROL.sub(" ", value).split())


def encode_phrase(phrase: str) -> str:
    """A display name for an address header: as is, quoted, or RFC 2047 encoded words."""
    phrase = one_line(phrase)
    if not phrase:
        return phrase
    plain = (
        phrase
        if _ATEXT_PHRASE.match(phrase)
        else '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"'
    )
    # "=?" would be read as an encoded word, and a long phrase cannot be folded under 78
    # characters: both go as encoded words, which decode back to the text as written.
    if phrase.isascii() and "=?" not in phrase and len(plain) <= _MAX_PLAIN_PHRASE:
        return plain
    return "\r\n ".join(
        "=?utf-8?b?" + b64encode(chunk).decode("ascii") + "?=" for chunk in _utf8_chunks(phrase)
    )


def _utf8_chunks(text: str, limit: int = 45) -> list[bytes]:
    """UTF-8 pieces of at most ``limit`` bytes, never splitting a character (RFC 2047 §5)."""
    chunks: list[bytes] = []
    current = b""
    for char in text:
        encoded = char.encode("utf-8")
        if len(current) + len(encoded) > limit:
            chunks.append(current)
            current = b""
        current += encoded
    if current:
        chunks.append(current)
    return chunks


def encode_address(address: str) -> str:
    """An address for a header: control characters gone, an IDN domain as ASCII (punycode)."""
    address = "".join(one_line(address).split())
    local, at, domain = address.rpartition("@")
    if at and not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            pass  # leave it to the relay to refuse; the header stays one line either way
    return f"{local}{at}{domain}" if at else address


def format_address(name: str, address: str) -> str:
    """``Name <address>`` (or the bare address without a name), safely encoded."""
    phrase = encode_phrase(name)
    address = encode_address(address)
    if not phrase:
        return address
    # Fold before the address when the line would pass 78 characters (RFC 5322 §2.1.1).
    last_line = phrase.rpartition("\n")[2]
    separator = " " if len(last_line) + len(address) < 70 else "\r\n "
    return f"{phrase}{separator}<{address}>"


@functools.lru_cache(maxsize=64)
def _domain_of(from_address: str) -> str:
    _, address = parseaddr(from_address)
    domain = address.rpartition("@")[2] or "localhost"
    return encode_address("x@" + domain).rpartition("@")[2]


def make_message_id(from_address: str) -> str:
    """A new unique Message-ID (without brackets) on the From address's domain."""
    return f"{time.time_ns():x}.{secrets.token_hex(8)}@{_domain_of(from_address)}"


def _qp(data: str) -> bytes:
    """Quoted-printable (binascii, in C) with CRLF line ends, hard and soft."""
    encoded = binascii.b2a_qp(data.encode("utf-8"), quotetabs=False, istext=True, header=False)
    if len(encoded) < _QP_LINE:  # most per-recipient values: one short line
        return encoded.replace(b"\r\n", b"\n").replace(b"\n", CRLF)
    lines = encoded.replace(b"\r\n", b"\n").split(b"\n")
    return CRLF.join([_fold_qp_line(line) for line in lines])


def _fold_qp_line(line: bytes) -> bytes:
    """Split an encoded line so that each piece, soft break included, has at most 76 chars.

    binascii writes lines of 77 or 78 when it escapes trailing whitespace, and a piece's
    last line gets one more "=" (its soft break) here: so a line without a soft break of its
    own is kept to 75. A cut never falls inside an "=XX" escape.
    """
    limit = _QP_LINE if line.endswith(b"=") else _QP_LINE - 1
    if len(line) <= limit:
        return line
    pieces = []
    while len(line) > limit:
        cut = _QP_LINE - 1
        if line[cut - 1 : cut] == b"=":
            cut -= 1
        elif line[cut - 2 : cut - 1] == b"=":
            cut -= 2
        pieces.append(line[:cut] + b"=")
        line = line[cut:]
    pieces.append(line)
    return CRLF.join(pieces)


def _crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


class _EncodedBody:
    """A body quoted-printable encoded once, in pieces split at the placeholders."""

    def __init__(self, source: str) -> None:
        pieces = _PLACEHOLDER_SPLIT.split(_crlf(source))
        if not pieces[-1].endswith("\r\n"):
            pieces[-1] += "\r\n"
        # re.split leaves a (now non-empty) text piece last, so every value is followed by text.
        self.parts: list[bytes | str] = []  # bytes: encoded text; str: a placeholder key
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            if index % 2:
                self.parts.append(_KEY_OF[piece])
            elif piece:
                # The soft break lets the next piece start a fresh line: pieces stay independent.
                self.parts.append(_qp(piece) + (b"" if last else _SOFT_BREAK))

    def fill(self, values: dict[str, bytes]) -> bytes:
        """The whole encoded body with each placeholder's encoded value."""
        return b"".join(
            part if isinstance(part, bytes) else values[part] for part in self.parts
        )


class MessageSkeleton:
    """The parts of an issue's message that are the same for everyone, prepared once."""

    def __init__(
        self, *, subject: str, html: str, text: str, from_address: str, list_info: ListInfo
    ) -> None:
        boundary = "=_nl_" + secrets.token_hex(16)  # "=_" never occurs in quoted-printable
        policy = email.policy.SMTP
        from_name, from_addr = parseaddr(one_line(from_address))
        mailto = "".join(one_line(list_info.unsubscribe_mailto).split()).strip("<>")
        if "?" not in mailto:
            mailto += "?subject=unsubscribe"
        self.subject = one_line(subject)
        self._head = "".join(
            [
                "From: " + format_address(from_name, from_addr) + "\r\n",
                policy.fold("Subject", self.subject),
                "MIME-Version: 1.0\r\n",
                "List-Id: " + list_id_header(list_info.list_name, list_info.list_id) + "\r\n",
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
                "Auto-Submitted: auto-generated\r\n",
                "Precedence: bulk\r\n",
                *_optional_headers(list_info),
            ]
        ).encode("utf-8")
        self._unsubscribe_tail = (">,\r\n <" + mailto + ">\r\n").encode("utf-8")
        part_head = "Content-Type: text/{}; charset=\"utf-8\"\r\n" \
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        self._body_head = (
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'
            "\r\n"
            "This is a multi-part message in MIME format.\r\n"
            f"--{boundary}\r\n" + part_head.format("plain")
        ).encode("ascii")
        self._between = (f"\r\n--{boundary}\r\n" + part_head.format("html")).encode("ascii")
        self._end = f"\r\n--{boundary}--\r\n".encode("ascii")
        self._text = _EncodedBody(text)
        self._html = _EncodedBody(html)
        #: only an issue with tracking has its placeholder: the others compute nothing more
        self._tracked = "tracking" in self._text.parts or "tracking" in self._html.parts
        self._date_second = -1
        self._date = b""

    def _date_header(self) -> bytes:
        # formatdate is cheap but not free; thousands of messages share each second.
        now = int(time.time())
        if now != self._date_second:
            self._date = formatdate(now, usegmt=True).encode("ascii")
            self._date_second = now
        return self._date

    def personalise(self, recipient: Recipient) -> bytes:
        """The whole message for one recipient, ready for SMTP DATA (CRLF line ends)."""
        values = placeholder_values(
            name=recipient.name,
            unsubscribe_url=recipient.unsubscribe_url,
            manage_url=recipient.manage_url,
        )
        if self._tracked:
            values["tracking"] = "".join(recipient.tracking.split())
        # Each value ends in a soft break, like the encoded pieces around it.
        text_values = {key: _qp(value) + _SOFT_BREAK for key, value in values.items()}
        html_values = {
            key: _qp(html_lib.escape(value, quote=True)) + _SOFT_BREAK
            for key, value in values.items()
        }
        to = format_address(recipient.name, recipient.email)
        message_id = "".join(one_line(recipient.message_id).split()).strip("<>")
        return b"".join(
            (
                self._head,
                b"To: ", to.encode("utf-8"), CRLF,
                b"Date: ", self._date_header(), CRLF,
                b"Message-ID: <", message_id.encode("utf-8"), b">\r\n",
                b"List-Unsubscribe: <", values["unsubscribe_url"].encode("utf-8"),
                self._unsubscribe_tail,
                self._body_head,
                self._text.fill(text_values),
                self._between,
                self._html.fill(html_values),
                self._end,
            )
        )  # fmt: skip


def _optional_headers(list_info: ListInfo) -> list[str]:
    """List-Archive, List-Help and Feedback-ID, each when set (one line each, no spaces
    inside a URL, so no value can add a header)."""
    headers = []
    for name, value in (("List-Archive", list_info.archive_url),
                        ("List-Help", list_info.help_url)):  # fmt: skip
        url = "".join(one_line(value).split()).strip("<>")
        if url:
            headers.append(f"{name}: <{url}>\r\n")
    feedback = "".join(one_line(list_info.feedback_id).split())
    if feedback:
        headers.append(f"Feedback-ID: {feedback}\r\n")
    return headers


def feedback_id(*parts: object, sender_id: str) -> str:
    """A Feedback-ID value (Gmail's ``a:b:c:SenderId``): each part with no colon or space."""
    clean = [_FEEDBACK_UNSAFE.sub("", str(part)) or "-" for part in (*parts, sender_id)]
    return ":".join(clean)


def _split_address(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return local, domain


def build_simple_message(
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    from_address: str,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A one-off message (confirmations, transactional mail), with Date, Message-ID (a new
    one unless ``message_id``, without brackets), Auto-Submitted and a text part (and an
    HTML alternative when ``html`` is given); ``headers`` adds more (one line each)."""
    to_name, to_address = parseaddr(one_line(to))
    from_name, from_addr = parseaddr(one_line(from_address))
    to_address = encode_address(to_address or one_line(to))
    # A non-ASCII mailbox name (RFC 6531) can only be written in a UTF-8 header; such a
    # message goes only through relays that offer SMTPUTF8 (the transport checks).
    utf8 = not to_address.isascii()
    message = EmailMessage(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
    message["From"] = formataddr((from_name, encode_address(from_addr)))
    message["To"] = (
        Address(to_name, *_split_address(to_address))
        if utf8
        else formataddr((to_name, to_address))
    )
    message["Subject"] = one_line(subject)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{message_id or make_message_id(from_address)}>"
    message["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        message[name] = one_line(value)
    message.set_content(text, cte="quoted-printable")
    if html is not None:
        message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message.as_bytes()
