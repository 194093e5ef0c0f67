"""Feeds: RSS or Atom feeds that the workers poll; each new entry becomes a statement.

A poll is a conditional GET (``If-None-Match``/``If-Modified-Since`` from the last answer;
a 304 changes nothing) through ``fetch.py`` (timeout, size cap, public addresses only). Each
entry not seen before (by its guid) becomes a statement: the entry's HTML cleaned with nh3
like any statement's, kept as a raw HTML block of the statement's Markdown so the feed's
text is never read as Markdown or Liquid, its link as the statement's ``permalink``.

A feed may also open a draft issue for each new entry (to its lists), and send it only if
an editor turned on automatic sending for that feed. The entries a feed already holds when
it is first polled become statements without opening issues: subscribing to a feed with
fifty old posts must not make fifty drafts, or fifty sends.

A failed poll is recorded on the feed (``last_error``, shown in the admin) and tried again
after a wait that doubles with each failure in a row (``FEEDS_RETRY_SECONDS`` up to
``FEEDS_MAX_BACKOFF``). The workers' sweep claims due feeds (one conditional UPDATE each,
so one worker of many polls a feed) and queues ``poll_feed`` for them.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import feedparser
from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from newsletter import queue
from newsletter.audience.models import MailingList
from newsletter.content import fetch
from newsletter.content.issues import create_issue
from newsletter.content.markdown import clean_html
from newsletter.content.models import Feed, FeedEntry, Issue, Statement
from newsletter.content.statements import MAX_AUTHOR, MAX_SLUG, MAX_TITLE, slugify
from newsletter.delivery.send import dispatcher
from newsletter.errors import NewsletterError, ValidationError
from newsletter.extensions import db
from newsletter.models import get_or_raise, utcnow

log = logging.getLogger(__name__)

#: the fewest seconds between two polls of one feed
MIN_INTERVAL = 60
MAX_INTERVAL = 7 * 24 * 3600
#: entries taken from one answer (newest first); a feed of thousands is a backlog, not news
MAX_ENTRIES = 50
MAX_GUID = 500
#: a claimed feed is polled again after this long if its job was lost with the broker
CLAIM_SECONDS = 300


@dataclass
class PollResult:
    """What one poll did."""

    feed_id: int
    not_modified: bool = False
    statements: list[Statement] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    error: str | None = None

    def describe(self) -> str:
        """One line for the admin or a log."""
        if self.error:
            return f"failed: {self.error}"
        if self.not_modified:
            return "not modified since the last poll"
        made = len(self.statements)
        text = f"{made} new entr{'y' if made == 1 else 'ies'}"
        if self.issues:
            text += f", {len(self.issues)} draft issue{'' if len(self.issues) == 1 else 's'}"
        return text


# --- the feeds ------------------------------------------------------------------------------


def list_feeds() -> list[Feed]:
    """Every feed, in the order they were added."""
    return list(db.session.scalars(select(Feed).order_by(Feed.id)))


def get_feed(feed_id: int) -> Feed:
    """The feed with this id.

    :raises NotFound: no such feed.
    """
    return get_or_raise(Feed, feed_id, "feed")


def add_feed(
    url: str,
    *,
    title: str = "",
    interval: int | None = None,
    list_slugs: Iterable[str] = (),
    auto_open_draft: bool = False,
    auto_send: bool = False,
) -> Feed:
    """Subscribe to a feed; it is polled at the next sweep.

    :raises ValidationError: a bad address, interval or list, an address already added, or
        automatic sending without drafts to send (``field`` names it).
    """
    feed = Feed(next_poll_at=utcnow())
    _apply(feed, url=url, title=title, interval=interval, list_slugs=list(list_slugs),
           auto_open_draft=auto_open_draft, auto_send=auto_send)  # fmt: skip
    db.session.add(feed)
    db.session.commit()
    return feed


def update_feed(feed_id: int, **fields: Any) -> Feed:
    """Change a feed (the same fields as ``add_feed``; only those given change).

    :raises ValidationError: as for ``add_feed``.
    """
    feed = get_feed(feed_id)
    try:
        _apply(feed, **fields)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return feed


def delete_feed(feed_id: int) -> None:
    """Unsubscribe; the statements and issues it made stay."""
    feed = get_feed(feed_id)
    db.session.delete(feed)
    db.session.commit()


def _apply(feed: Feed, **fields: Any) -> None:
    if "url" in fields:
        try:
            url = fetch.check_url(str(fields["url"] or ""))
        except fetch.FetchError as error:
            raise ValidationError(error.reason, field="url") from None
        taken = db.session.scalar(select(Feed.id).where(Feed.url == url, Feed.id != feed.id))
        if taken is not None:
            raise ValidationError("That feed is already added.", field="url")
        feed.url = url
    if "title" in fields:
        feed.title = " ".join(str(fields["title"] or "").split())[:MAX_TITLE]
    if "interval" in fields:
        interval = fields["interval"]
        interval = int(current_app.config["FEEDS_INTERVAL"]) if interval is None else interval
        if not MIN_INTERVAL <= int(interval) <= MAX_INTERVAL:
            raise ValidationError(
                f"Poll every {MIN_INTERVAL} seconds to a week ({MAX_INTERVAL} seconds).",
                field="interval",
            )
        feed.interval = int(interval)
    if "list_slugs" in fields:
        slugs = [str(slug) for slug in fields["list_slugs"] or []]
        found = list(db.session.scalars(select(MailingList).where(MailingList.slug.in_(slugs))))
        missing = set(slugs) - {lst.slug for lst in found}
        if missing:
            raise ValidationError(f"No list {sorted(missing)[0]!r}.", field="lists")
        feed.lists = found
    for name in ("auto_open_draft", "auto_send"):
        if name in fields:
            setattr(feed, name, bool(fields[name]))
    if feed.auto_send and not feed.auto_open_draft:
        raise ValidationError(
            "Automatic sending sends the draft each entry opens: turn on drafts too.",
            field="auto_send",
        )
    if feed.auto_open_draft and not feed.lists:
        raise ValidationError("A feed that opens draft issues needs a list.", field="lists")


# --- polling --------------------------------------------------------------------------------


def enqueue_due(now: datetime | None = None) -> list[int]:
    """Claim the feeds due for a poll and queue ``poll_feed`` for each (the sweep calls it).

    Claiming moves ``next_poll_at`` on with a conditional UPDATE, so when many workers sweep
    at once each feed is queued once; a lost job is retried when the claim runs out.
    """
    now = now or utcnow()
    due = db.session.execute(
        select(Feed.id, Feed.next_poll_at).where(Feed.next_poll_at <= now).order_by(Feed.id)
    ).all()
    claimed: list[int] = []
    for feed_id, next_poll_at in due:
        result = db.session.execute(
            update(Feed)
            .where(Feed.id == feed_id, Feed.next_poll_at == next_poll_at)
            .values(next_poll_at=now + timedelta(seconds=CLAIM_SECONDS))
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        if getattr(result, "rowcount", 0) == 1:
            claimed.append(feed_id)
            queue.enqueue("poll_feed", feed_id)
    return claimed


def poll_feed(feed_id: int, *, now: datetime | None = None) -> PollResult:
    """Fetch the feed once and turn its new entries into statements (and issues).

    A failure is recorded on the feed with its backoff, not raised: the feed's page shows
    it, and the next poll comes when the backoff says.

    :raises NotFound: no such feed.
    """
    feed = get_feed(feed_id)
    now = now or utcnow()
    result = PollResult(feed.id)
    config = current_app.config
    feed.last_polled_at = now
    try:
        answer = fetch.fetch(
            feed.url,
            etag=feed.etag,
            last_modified=feed.last_modified,
            timeout=float(config["FEEDS_TIMEOUT"]),
            max_bytes=int(config["FEEDS_MAX_BYTES"]),
            allow_private=bool(config["FEEDS_ALLOW_PRIVATE"]),
        )
        if answer.status == 304:
            result.not_modified = True
        else:
            parsed = _parse(answer)
            first_poll = feed.last_success_at is None
            if not feed.title:
                feed.title = " ".join(str(parsed.feed.get("title") or "").split())[:MAX_TITLE]
            feed.etag = (answer.etag or "")[:500] or None
            feed.last_modified = (answer.last_modified or "")[:100] or None
            feed_id_, url = feed.id, feed.url
            db.session.commit()
            for entry in list(parsed.entries)[:MAX_ENTRIES][::-1]:  # oldest first
                _take_entry(feed_id_, url, entry, result, open_issue=not first_poll)
            feed = get_feed(feed_id_)
    except (fetch.FetchError, FeedUnreadable) as error:
        db.session.rollback()
        feed = get_feed(feed_id)
        feed.failures += 1
        feed.last_error = error.reason
        feed.last_polled_at = now
        feed.next_poll_at = now + backoff(feed.failures)
        result.error = error.reason
        db.session.commit()
        log.info("feed %s failed (%s in a row): %s", feed.url, feed.failures, error.reason)
        return result
    feed.failures = 0
    feed.last_error = None
    feed.last_success_at = now
    feed.next_poll_at = now + timedelta(seconds=feed.interval)
    db.session.commit()
    return result


def backoff(failures: int) -> timedelta:
    """How long to wait after ``failures`` failed polls in a row: doubling from
    ``FEEDS_RETRY_SECONDS``, at most ``FEEDS_MAX_BACKOFF``."""
    first = int(current_app.config["FEEDS_RETRY_SECONDS"])
    ceiling = int(current_app.config["FEEDS_MAX_BACKOFF"])
    return timedelta(seconds=min(first * 2 ** min(max(failures, 1) - 1, 30), ceiling))


class FeedUnreadable(NewsletterError):
    """The answer is not an RSS or Atom feed."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.reason = reason


def _parse(answer: fetch.Fetched) -> Any:
    headers = {"content-location": answer.url}
    if answer.content_type:
        headers["content-type"] = answer.content_type
    # feedparser reads the bytes it is given (no fetching of its own); it sanitizes entry
    # HTML and resolves relative links against the feed's address.
    parsed = feedparser.parse(answer.body, response_headers=headers)
    if not parsed.entries and not parsed.feed.get("title") and parsed.get("bozo"):
        problem = parsed.get("bozo_exception")
        raise FeedUnreadable(answer.url, f"not an RSS or Atom feed ({problem})")
    return parsed


def _guid(entry: Any) -> str:
    guid = str(entry.get("id") or entry.get("guid") or entry.get("link") or "").strip()
    if not guid or len(guid) > MAX_GUID:
        parts = (entry.get("title", ""), entry.get("link", ""), entry.get("summary", ""))
        digest = hashlib.sha256("\n".join(str(part) for part in parts).encode()).hexdigest()
        guid = f"sha256:{digest}"
    return guid


def _take_entry(
    feed_id: int, feed_url: str, entry: Any, result: PollResult, *, open_issue: bool
) -> None:
    """One entry: skipped when seen, else a statement (and maybe an issue), committed."""
    guid = _guid(entry)
    seen = db.session.scalar(
        select(FeedEntry.id).where(FeedEntry.feed_id == feed_id, FeedEntry.guid == guid)
    )
    if seen is not None:
        return
    statement = _statement(entry, feed_url, guid)
    db.session.add(statement)
    db.session.add(FeedEntry(feed_id=feed_id, guid=guid, statement=statement))
    try:
        db.session.commit()
    except IntegrityError:  # another poll of the same feed took it first
        db.session.rollback()
        return
    result.statements.append(statement)
    if open_issue:
        _open_issue(feed_id, guid, statement, result)


def _statement(entry: Any, feed_url: str, guid: str) -> Statement:
    title = " ".join(str(entry.get("title") or "").split())[:MAX_TITLE] or "Untitled entry"
    link = str(entry.get("link") or "")
    link = link if re.match(r"^https?://", link, re.IGNORECASE) else ""
    content = entry.get("content") or []
    html = str(content[0].get("value") if content else entry.get("summary") or "")
    when = _entry_date(entry)
    front_matter: dict[str, Any] = {
        "title": title,
        "feed": feed_url,
        "guid": guid,
        # Jekyll's own switch: a feed's text is never read as Liquid
        "render_with_liquid": False,
    }
    if link:
        front_matter["permalink"] = link  # relative links resolve against it
    if when:
        front_matter["date"] = when.isoformat()
    tags = [str(tag.get("term")) for tag in entry.get("tags") or [] if tag.get("term")]
    if tags:
        front_matter["tags"] = tags
    author = " ".join(str(entry.get("author") or "").split())[:MAX_AUTHOR]
    if author:
        front_matter["author"] = author
    return Statement(
        slug=_free_slug(slugify(title) or "entry"),
        title=title,
        author=author,
        date=when,
        body=html_block(clean_html(html, base_url=link or None)) or "<p></p>\n",
        front_matter=front_matter,
    )


def html_block(html: str) -> str:
    """Cleaned HTML as one raw HTML block of Markdown: inside a ``<div>`` and without blank
    lines (a blank line would end the block and let Markdown read the rest), so the text
    is never rewritten. Blank lines inside ``<pre>`` become a space, which renders the same."""
    text = html.replace("\r\n", "\n").replace("\x00", "").strip()
    if not text:
        return ""
    text = re.sub(r"\n[ \t]*(?=\n)", "\n&#32;", text)
    return f"<div>\n{text}\n</div>\n"


def _free_slug(base: str) -> str:
    base = base[: MAX_SLUG - 8].strip("-") or "entry"
    taken = set(
        db.session.scalars(
            select(Statement.slug).where(
                (Statement.slug == base) | Statement.slug.like(f"{base}-%")
            )
        )
    )
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def _entry_date(entry: Any) -> date | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), UTC).date()
            except (OverflowError, ValueError, OSError):
                continue
    return None


def _open_issue(feed_id: int, guid: str, statement: Statement, result: PollResult) -> None:
    feed = get_feed(feed_id)
    if not feed.auto_open_draft or not feed.lists:
        return
    try:
        issue = create_issue(
            subject=statement.title, statement_ids=[statement.id],
            list_slugs=[lst.slug for lst in feed.lists],
        )  # fmt: skip
    except NewsletterError as error:
        db.session.rollback()
        log.warning("feed %s: no draft for %r: %s", feed.url, statement.title, error)
        return
    db.session.execute(
        update(FeedEntry)
        .where(FeedEntry.feed_id == feed_id, FeedEntry.guid == guid)
        .values(issue_id=issue.id)
    )
    db.session.commit()
    result.issues.append(issue)
    if feed.auto_send:
        # Only because an editor turned it on for this feed; the send is the usual one.
        try:
            dispatcher.request_send(issue.id)
        except NewsletterError as error:
            db.session.rollback()
            log.warning("feed %s: issue %s not sent: %s", feed.url, issue.id, error)
