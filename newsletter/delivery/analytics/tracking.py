"""Open and click tracking, for issues whose editor turned it on.

At send, the issue's HTML gets a pixel and its links point at our redirector (``instrument``,
once per batch, on the skeleton: an issue with tracking off is sent exactly as before and
costs nothing more). Two signed tokens carry what a hit needs:

- a link's token covers the issue, the link's position and the target URL, so the
  redirector only ever sends people where the issue itself linked: a tampered or unsigned
  target is refused, never followed;
- the recipient's token, one placeholder shared by the pixel and every link, carries the
  issue and the time of the send, and in ``individual`` mode the delivery. In ``aggregate``
  mode it names nobody: it is made once a second and shared by everyone mailed in it.

The public endpoints (``web/track.py``) take no cookie, store no address and no agent.
"""

from __future__ import annotations

import html as html_lib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import exists, select

from newsletter.content.models import Issue, TrackingMode
from newsletter.delivery.analytics import scanners
from newsletter.delivery.analytics.counters import bump
from newsletter.delivery.analytics.models import Metric, TrackingEvent, TrackingKind
from newsletter.delivery.models import Delivery
from newsletter.errors import InvalidToken
from newsletter.extensions import db
from newsletter.mail.render import TRACKING_PLACEHOLDER
from newsletter.models import utcnow
from newsletter.signing import sign, unsign_timed

LINK_PURPOSE = "track-link"
RECIPIENT_PURPOSE = "track"
#: tracked links keep working as long as anyone keeps the mail
MAX_AGE = 20 * 365 * 24 * 3600

#: an ``<a … href="…">``; the value as written (HTML-escaped) in group 3
_ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?\shref\s*=\s*)(["'])(.*?)\2""", re.I | re.S)
_BODY_END = re.compile(r"</body\s*>", re.I)
#: levels of detail, to keep the lesser of what a token carries and what the issue says now
_DETAIL = {TrackingMode.OFF: 0, TrackingMode.AGGREGATE: 1, TrackingMode.INDIVIDUAL: 2}


def _trackable(url: str) -> bool:
    # Our own per-recipient links are placeholders, not http URLs; mailto: and anchors stay.
    return url.lower().startswith(("http://", "https://")) and "%%NL-" not in url


def tracked_links(html: str) -> list[str]:
    """The issue's distinct trackable link targets, in order (position 1 is the first)."""
    links: list[str] = []
    for match in _ANCHOR_HREF.finditer(html):
        url = html_lib.unescape(match.group(3)).strip()
        if _trackable(url) and url not in links:
            links.append(url)
    return links


def instrument(html: str, issue_id: int, base_url: str) -> str:
    """The issue's HTML with each trackable link through the redirector and a pixel at the
    end, the recipient's token left as ``TRACKING_PLACEHOLDER``."""
    base = base_url.rstrip("/")
    positions = {url: index for index, url in enumerate(tracked_links(html), start=1)}

    def rewrite(match: re.Match[str]) -> str:
        url = html_lib.unescape(match.group(3)).strip()
        if url not in positions:
            return match.group(0)
        token = link_token(issue_id, positions[url], url)
        href = f"{base}/t/c/{token}/{TRACKING_PLACEHOLDER}"
        return f"{match.group(1)}{match.group(2)}{href}{match.group(2)}"

    html = _ANCHOR_HREF.sub(rewrite, html)
    pixel = (
        f'<img src="{base}/t/o/{TRACKING_PLACEHOLDER}" width="1" height="1" alt="" '
        'border="0" style="display:block;width:1px;height:1px;border:0;">'
    )
    ends = list(_BODY_END.finditer(html))
    if not ends:
        return html + pixel
    cut = ends[-1].start()
    return html[:cut] + pixel + html[cut:]


def link_token(issue_id: int, position: int, url: str) -> str:
    """The signed token of one of the issue's links: issue, position and target."""
    return sign(LINK_PURPOSE, i=issue_id, n=position, u=url)


@dataclass(frozen=True)
class TrackedLink:
    issue_id: int
    position: int
    url: str


def read_link_token(token: str) -> TrackedLink:
    """What a link token stands for.

    :raises InvalidToken: forged or altered (the target is covered by the signature).
    """
    payload, _ = unsign_timed(LINK_PURPOSE, token, MAX_AGE)
    issue_id, position, url = payload.get("i"), payload.get("n"), payload.get("u")
    if not (isinstance(issue_id, int) and isinstance(position, int) and isinstance(url, str)
            and _trackable(url)):  # fmt: skip
        raise InvalidToken(LINK_PURPOSE, "invalid")
    return TrackedLink(issue_id, position, url)


def recipient_token(issue_id: int, delivery_id: int | None) -> str:
    """The per-message token: the issue and the send time, and the delivery when given."""
    if delivery_id is None:
        return sign(RECIPIENT_PURPOSE, i=issue_id)
    return sign(RECIPIENT_PURPOSE, i=issue_id, d=delivery_id)


@dataclass(frozen=True)
class Reader:
    """Who a recipient token says was mailed: nobody in particular in aggregate mode."""

    issue_id: int
    delivery_id: int | None
    sent_at: datetime


def read_recipient_token(token: str) -> Reader:
    """What a recipient token carries.

    :raises InvalidToken: forged or altered.
    """
    payload, signed_at = unsign_timed(RECIPIENT_PURPOSE, token, MAX_AGE)
    issue_id, delivery_id = payload.get("i"), payload.get("d")
    if not isinstance(issue_id, int) or not (delivery_id is None or isinstance(delivery_id, int)):
        raise InvalidToken(RECIPIENT_PURPOSE, "invalid")
    if signed_at.tzinfo is None:
        signed_at = signed_at.replace(tzinfo=UTC)
    return Reader(issue_id, delivery_id, signed_at)


class TokenMaker:
    """Makes the recipient tokens of one batch. In aggregate mode a token is made once a
    second and shared by everyone mailed in it (it names nobody); in individual mode one
    per message."""

    def __init__(self, issue_id: int, mode: TrackingMode) -> None:
        self.issue_id = issue_id
        self.individual = mode is TrackingMode.INDIVIDUAL
        self._second = -1
        self._shared = ""

    def token(self, delivery_id: int) -> str:
        if self.individual:
            return recipient_token(self.issue_id, delivery_id)
        now = int(time.time())
        if now != self._second:
            self._shared = recipient_token(self.issue_id, None)
            self._second = now
        return self._shared


def tracking_mode(issue_id: int) -> TrackingMode | None:
    """The issue's tracking as it stands now (None: no such issue)."""
    value = db.session.scalar(select(Issue.__table__.c.tracking).where(Issue.id == issue_id))
    return None if value is None else TrackingMode(value)


@dataclass(frozen=True)
class Hit:
    """One request for a pixel or a tracked link, as the endpoint saw it."""

    kind: TrackingKind
    method: str
    user_agent: str  # read for filtering, never stored
    link: int = 0


def record_hit(reader: Reader, hit: Hit, *, scanner_seconds: float) -> str | None:
    """Count an open or a click at the detail the issue allows now, and commit.

    The lesser of what the token carries and the issue's tracking now is kept: an editor
    who turns tracking down after sending is obeyed for every mail already out.

    :returns: why it was filtered (``"head"``, ``"fast"``, ``"agent"``), "off" when the
        issue tracks nothing now, or None when counted as a person's.
    """
    mode = tracking_mode(reader.issue_id)
    if mode is None or mode is TrackingMode.OFF:
        db.session.commit()
        return "off"
    now = utcnow()
    reason = scanners.filter_reason(
        hit.kind, method=hit.method, user_agent=hit.user_agent,
        since_send=now - reader.sent_at, scanner_seconds=scanner_seconds,
    )  # fmt: skip
    opened = hit.kind is TrackingKind.OPEN
    if reason is not None:
        bump(reader.issue_id, Metric.OPEN_FILTERED if opened else Metric.CLICK_FILTERED,
             link=hit.link, at=now)  # fmt: skip
        db.session.commit()
        return reason
    bump(reader.issue_id, Metric.OPEN if opened else Metric.CLICK, link=hit.link, at=now)
    detail = min(_DETAIL[mode], 2 if reader.delivery_id is not None else 1)
    if detail == 2 and reader.delivery_id is not None:
        _record_event(reader, hit, now)
    db.session.commit()
    return None


def _record_event(reader: Reader, hit: Hit, now: datetime) -> None:
    """One row for the delivery's open or click; its first also counts as a unique one."""
    delivery_id = reader.delivery_id
    belongs = db.session.scalar(
        select(exists().where(Delivery.id == delivery_id, Delivery.issue_id == reader.issue_id))
    )
    if not belongs:
        return  # erased since, or another issue's delivery: nothing to tie it to
    events = TrackingEvent.__table__
    first = not db.session.scalar(
        select(exists().where(events.c.delivery_id == delivery_id, events.c.kind == hit.kind))
    )
    db.session.execute(
        events.insert().values(
            issue_id=reader.issue_id,
            delivery_id=delivery_id,
            kind=hit.kind,
            link=hit.link,
            occurred_at=now,
        )  # fmt: skip
    )
    if first:
        unique = Metric.OPEN_UNIQUE if hit.kind is TrackingKind.OPEN else Metric.CLICK_UNIQUE
        bump(reader.issue_id, unique, at=now)
