"""Statements, templates and issues."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Column,
    Date,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import false as sa_false
from sqlalchemy.ext.orderinglist import ordering_list
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.extensions import db
from newsletter.models import UTCDateTime, enum_column, utcnow

if TYPE_CHECKING:
    from newsletter.audience.models import MailingList
    from newsletter.audience.segments.models import Segment


class Statement(db.Model):  # type: ignore[name-defined]
    """A Markdown post with YAML front matter, as on a Jekyll site."""

    __tablename__ = "statements"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    author: Mapped[str] = mapped_column(String(200), default="")
    date: Mapped[date | None] = mapped_column(Date)
    body: Mapped[str] = mapped_column(Text)  # Markdown, raw HTML allowed (cleaned on render)
    front_matter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # When an editor last saw it rendered (its page or the editor's preview): the compose
    # page warns before sending a statement nobody has looked at.
    previewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<Statement {self.id} {self.slug}>"


class TemplateKind(enum.Enum):
    """What a template lays out: an issue (statements, an unsubscribe link) or one
    transactional message (the caller's ``data``)."""

    ISSUE = "issue"
    TRANSACTIONAL = "transactional"


class Template(db.Model):  # type: ignore[name-defined]
    """An MJML layout for issues or transactional mail, with its plain-text counterpart
    (both Jinja)."""

    __tablename__ = "templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    mjml: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    builtin: Mapped[bool] = mapped_column(default=False)
    kind: Mapped[TemplateKind] = mapped_column(
        enum_column(TemplateKind), default=TemplateKind.ISSUE, server_default="issue"
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"<Template {self.id} {self.kind.value} {self.name}>"


class IssueStatus(enum.Enum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    SENT = "sent"


issue_lists = Table(
    "issue_lists",
    db.metadata,
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("list_id", Integer, ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True),
)


class TrackingMode(enum.Enum):
    """How much an issue's opens and clicks are followed (off unless an editor turns it on)."""

    OFF = "off"  # no pixel, links as written: a send costs nothing extra
    AGGREGATE = "aggregate"  # counts by the hour only: nothing tells who opened or clicked
    INDIVIDUAL = "individual"  # also one row per open and click, tied to the delivery


class IssueStatement(db.Model):  # type: ignore[name-defined]
    """A statement's place in an issue."""

    __tablename__ = "issue_statements"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id"), primary_key=True)
    position: Mapped[int] = mapped_column(default=0)

    statement: Mapped[Statement] = relationship(lazy="joined")


class Issue(db.Model):  # type: ignore[name-defined]
    """One or more statements laid out by a template and sent to lists."""

    __tablename__ = "issues"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    intro: Mapped[str] = mapped_column(Text, default="")  # Markdown
    # The From display name of this issue ("" : the one of FROM_ADDRESS); the address stays.
    sender_name: Mapped[str] = mapped_column(
        String(200), default="", server_default=text("''")
    )
    # Off the admin's issue list (a sent issue cannot be deleted, only put out of the way).
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    template_id: Mapped[int | None] = mapped_column(ForeignKey("templates.id"))
    status: Mapped[IssueStatus] = mapped_column(enum_column(IssueStatus), default=IssueStatus.DRAFT)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The audience is fixed when sending starts: subscribers above this id are not included.
    max_subscriber_id: Mapped[int | None] = mapped_column()
    # Rendered once when sending starts; per-recipient placeholders are still in them.
    rendered_subject: Mapped[str | None] = mapped_column(String(300))
    rendered_html: Mapped[str | None] = mapped_column(Text)
    rendered_text: Mapped[str | None] = mapped_column(Text)
    # What the archive page shows, fixed with the rendering: the intro and statements as
    # sent (``content/archive.py``), so editing or deleting a statement later changes no
    # sent issue's page.
    archived_contents: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    total_count: Mapped[int] = mapped_column(default=0)
    # The archive: the permalink's slug (made from the subject when sending starts, then
    # never changed), and an editor's choice to keep a public issue out of it.
    slug: Mapped[str | None] = mapped_column(String(200), unique=True, index=True)
    kept_out: Mapped[bool] = mapped_column(default=False, server_default=sa_false())
    # Why the last attempt to send stopped before anyone got mail (an empty audience).
    send_error: Mapped[str | None] = mapped_column(Text)
    sent_count: Mapped[int] = mapped_column(default=0)
    failed_count: Mapped[int] = mapped_column(default=0)
    #: open and click tracking (``delivery/analytics``): off unless an editor turns it on
    tracking: Mapped[TrackingMode] = mapped_column(
        enum_column(TrackingMode), default=TrackingMode.OFF, server_default=text("'off'")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    template: Mapped[Template | None] = relationship()
    items: Mapped[list[IssueStatement]] = relationship(
        order_by="IssueStatement.position",
        collection_class=ordering_list("position"),
        cascade="all, delete-orphan",
    )
    lists: Mapped[list[MailingList]] = relationship(secondary=issue_lists)
    #: narrow the audience: every segment must match (``audience/segments``)
    segments: Mapped[list[Segment]] = relationship(secondary="issue_segments")

    @property
    def statements(self) -> list[Statement]:
        """The statements in their order in the issue."""
        return [item.statement for item in self.items]

    def __repr__(self) -> str:
        return f"<Issue {self.id} {self.status.value} {self.subject!r}>"


feed_lists = Table(
    "feed_lists",
    db.metadata,
    Column("feed_id", Integer, ForeignKey("feeds.id", ondelete="CASCADE"), primary_key=True),
    Column("list_id", Integer, ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True),
)


class Feed(db.Model):  # type: ignore[name-defined]
    """An RSS or Atom feed the workers poll; each new entry becomes a statement."""

    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    title: Mapped[str] = mapped_column(String(300), default="")
    # What the last answer said, sent back as If-None-Match / If-Modified-Since.
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    next_poll_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    interval: Mapped[int] = mapped_column(default=3600)  # seconds between polls
    failures: Mapped[int] = mapped_column(default=0)  # polls failed in a row (the backoff)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    auto_open_draft: Mapped[bool] = mapped_column(default=False)
    # Sending stays an editor's act unless this is turned on for the feed.
    auto_send: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    lists: Mapped[list[MailingList]] = relationship(secondary=feed_lists)
    entries: Mapped[list[FeedEntry]] = relationship(
        back_populates="feed", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Feed {self.id} {self.url}>"


class FeedEntry(db.Model):  # type: ignore[name-defined]
    """An entry of a feed already seen (by its guid), and the statement it became."""

    __tablename__ = "feed_entries"
    __table_args__ = (UniqueConstraint("feed_id", "guid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    guid: Mapped[str] = mapped_column(String(500))
    statement_id: Mapped[int | None] = mapped_column(
        ForeignKey("statements.id", ondelete="SET NULL")
    )
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    feed: Mapped[Feed] = relationship(back_populates="entries")
    statement: Mapped[Statement | None] = relationship()

    def __repr__(self) -> str:
        return f"<FeedEntry {self.id} feed={self.feed_id} {self.guid!r}>"
