"""Hard or soft: what an SMTP status code (RFC 3463) and its diagnostic say of an address.

A hard bounce stops mail to the address at once, so only a failure that is the address's own
and lasting counts as hard. Some ``5.x.x`` codes are not: a full mailbox (5.2.2) empties, a
message too big (5.2.3, 5.3.4) says nothing of the address, an expired queue (5.4.7) is a
delay that ran out, and refusals for the *sender's* authentication or reputation (SPF, DKIM,
DMARC, reverse DNS, spam scoring) would stop mail to good addresses while our own set-up is
at fault. Those are soft: scored, and stopping only after repeated days.
"""

from __future__ import annotations

import re
from typing import Literal

Severity = Literal["hard", "soft"]

#: an enhanced status code (RFC 3463) anywhere in a text
STATUS_CODE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
#: a basic SMTP reply code at the start of a diagnostic (after an optional ``smtp;``)
_REPLY_CODE = re.compile(r"^(?:\s*[a-z-]+\s*;)?\s*([245])\d\d[\s-]", re.IGNORECASE)

#: permanent codes that are not the address's own lasting failure
_SOFT_PERMANENT = frozenset(
    {
        "5.2.2",  # mailbox full
        "5.2.3",  # message length exceeds the mailbox's limit
        "5.3.1",  # mail system full
        "5.3.4",  # message too big for the system
        "5.4.5",  # mail system congestion
        "5.4.7",  # delivery time expired: a delay that ran out
        "5.7.23",  # SPF validation failed
        "5.7.25",  # reverse DNS of the sending host failed
        "5.7.26",  # DMARC / multiple authentication checks failed
        "5.7.27",  # the sender's domain has a null MX or fails SPF
        "5.7.28",  # Microsoft: mail flood from the sending host
        "5.7.708",  # Microsoft: the sending IP's reputation
        "5.7.750",  # Microsoft: an unregistered sending domain
    }
)
#: words of a diagnostic that say the mailbox is full (servers that send a generic 5.0.0)
_FULL = re.compile(
    r"(mailbox|inbox|account|disk|user)\W+(is\W+)?(full|over\W*quota)|over\W*quota|"
    r"quota\W+(exceeded|full)|exceeded\W+(its\W+|the\W+)?(storage|quota)|insufficient\W+storage",
    re.IGNORECASE,
)
#: words of a ``5.7.1`` diagnostic that blame the message or the sender, not the address
_BLOCKED = re.compile(
    r"spam|junk|blocked|block\W*list|black\W*list|reputation|rbl|dnsbl|spamhaus|policy|"
    r"rate\W*limit|too\W+many|bulk|content",
    re.IGNORECASE,
)


def status_code(*texts: str) -> str:
    """The first enhanced status code (``5.1.1``) found in ``texts``, in order, or ""."""
    for text in texts:
        if match := STATUS_CODE.search(text):
            return ".".join(match.groups())
    return ""


def severity(status: str, diagnostic: str = "") -> Severity:
    """Hard or soft, for a recipient the report says failed.

    :param status: the enhanced status code (``5.1.1``), or "" when the report gives none
    :param diagnostic: the server's words (``smtp; 550 5.1.1 <a@b>: user unknown``)
    """
    code = status or status_code(diagnostic)
    if not code:
        reply = _REPLY_CODE.match(diagnostic)
        if reply and reply.group(1) == "4":
            return "soft"
        # No code at all: a "failed" recipient is given up for good (RFC 3464), and a
        # full mailbox is still worth noticing.
        return "soft" if _FULL.search(diagnostic) else "hard"
    klass, subject, _detail = code.split(".")
    if klass != "5":
        return "soft"  # 4.x.x: temporary; 2.x.x with "failed" is a confused MTA
    if code in _SOFT_PERMANENT:
        return "soft"
    if subject != "1" and _FULL.search(diagnostic):
        return "soft"  # a generic 5.0.0 or 5.x.x that says the mailbox is full
    if code == "5.7.1" and _BLOCKED.search(diagnostic):
        return "soft"
    return "hard"
