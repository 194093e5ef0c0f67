"""Bounces that are not DSNs (Exim, qmail, old Postfix and Exchange, …), through flufl.bounce.

flufl.bounce (Mailman's detectors) tells permanent from temporary failures by the form of
the report; its "temporary" ones are warnings that the MTA is still trying. A permanent one
is then read like a DSN's diagnostic: the status code or the words near the address decide
hard or soft (a full mailbox is soft whatever the form).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses

from flufl.bounce import all_failures

from newsletter.delivery.bounces import reading
from newsletter.delivery.bounces.dsn import Failure
from newsletter.delivery.bounces.status import severity, status_code

#: the bytes and lines of a report the detectors read: some run ~50 patterns over every
#: line, and an MTA's notice comes first
MAX_SCANNED = 64 * 1024
MAX_SCANNED_LINES = 2000
_ADDRESS = re.compile(r"^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$")
#: where a plain-text bounce starts quoting the returned message
_COPY_STARTS = re.compile(
    r"^\s*-{2,}.*(copy of|original message|returned (?:mail|message)|undelivered message)"
    r"|^\s*(?:original message follows|below this line is a copy)",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class Result:
    """What the detectors found."""

    failures: tuple[Failure, ...]
    #: addresses only warned about (the MTA is still trying)
    warned: tuple[str, ...]


def scan(raw: bytes) -> Result:
    """Run flufl.bounce over ``raw`` (its first :data:`MAX_SCANNED` bytes, up to
    :data:`MAX_SCANNED_LINES` lines)."""
    message = reading.parse_lenient(raw, MAX_SCANNED, MAX_SCANNED_LINES)
    _plain_headers(message)
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # noqa: BLE001 - one detector tripping over garbage stops them all
        return Result((), ())
    notice = _notice(message)
    failures = []
    for address in sorted(_decoded(permanent)):
        diagnostic = _diagnostic(notice, address)
        status = status_code(diagnostic)
        failures.append(Failure(address, severity(status, diagnostic), status, diagnostic))
    return Result(tuple(failures), tuple(sorted(_decoded(temporary))))


def _plain_headers(message: Message) -> None:
    """Make ``message`` safe for the detectors, which expect every header to be a ``str``
    (compat32 gives an ``email.header.Header`` for raw 8-bit bytes) and a ``From`` with an
    address in it (Yale's detector indexes the first one, and crashes on none)."""
    for part in reading.parts(message, limit=reading.MAX_BOUNDARY_LINES * 2):
        kept = getattr(part, "_headers", None)
        if isinstance(kept, list):
            kept[:] = [(name, reading.plain(value)) for name, value in kept]
    if not getaddresses([str(message.get("From", ""))]):
        del message["From"]
        message["From"] = "unknown@invalid"


def _decoded(addresses: frozenset[bytes]) -> set[str]:
    found = set()
    for address in list(addresses)[:100]:
        text = address.decode("ascii", errors="replace").strip().strip("<>").lower()
        if _ADDRESS.match(text):
            found.add(text)
    return found


def _notice(message: Message) -> str:
    """The report's own words, up to where it quotes the returned message."""
    text = reading.first_text(message)[: 64 * 1024]
    if match := _COPY_STARTS.search(text):
        text = text[: match.start()]
    return text


def _diagnostic(notice: str, address: str) -> str:
    """The lines of ``notice`` about ``address``: from a mention of it to the next blank line
    (at most 6 lines), the first mention that carries a status code, else the first one;
    else the first lines that carry a status code."""
    lines = notice.splitlines()
    mentions = []
    for index, line in enumerate(lines):
        if address in line.lower():
            about: list[str] = []
            for following in lines[index : index + 6]:
                if about and not following.strip():
                    break
                about.append(following.strip())
            mentions.append(" ".join(about)[:1000])
            if status_code(mentions[-1]) or len(mentions) == 5:
                break
    coded = [mention for mention in mentions if status_code(mention)]
    if coded or mentions:
        return (coded or mentions)[0]
    with_code = [line.strip() for line in lines if status_code(line)]
    return " ".join(with_code[:3])[:1000]
