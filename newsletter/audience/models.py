"""Subscribers, lists and the subscriptions between them."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    event,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.extensions import db
from newsletter.models import UTCDateTime, enum_column, utcnow


class SubscriberStatus(enum.Enum):
    ACTIVE = "active"
    BLOCKLISTED = "blocklisted"  # hard bounce or complaint: never mailed again


class OptIn(enum.Enum):
    SINGLE = "single"
    DOUBLE = "double"


class SubscriptionStatus(enum.Enum):
    UNCONFIRMED = "unconfirmed"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class ConsentSource(enum.Enum):
    """How a subscription was asked for, kept as the record of consent."""

    FORM = "form"
    API = "api"
    IMPORT = "import"
    ADMIN = "admin"


class Subscriber(db.Model):  # type: ignore[name-defined]
    __tablename__ = "subscribers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[SubscriberStatus] = mapped_column(
        enum_column(SubscriberStatus), default=SubscriberStatus.ACTIVE
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    #: signed into the manage and unsubscribe links; bumping it revokes the ones sent before
    token_version: Mapped[int] = mapped_column(default=0, server_default="0")
    #: when the last confirmation mail went out (the cool-down against flooding an address)
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: the UTC day of the confirmation mails counted in ``confirmations_that_day`` (the daily
    #: cap on top of the cool-down)
    confirmations_day: Mapped[date | None] = mapped_column(Date())
    confirmations_that_day: Mapped[int] = mapped_column(default=0, server_default="0")
    #: the language of the pages and mail the person gets from us ("en", "es"); None: unknown
    language: Mapped[str | None] = mapped_column(String(16))
    #: the soft-bounce score, as Mailman keeps it (``delivery/bounces``): at most one point a
    #: day, reset when the last bounce is stale; at the threshold the address stops receiving
    bounce_score: Mapped[int] = mapped_column(default=0, server_default="0")
    #: the UTC day of the last soft bounce counted in ``bounce_score``
    bounce_score_day: Mapped[date | None] = mapped_column(Date())

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Subscriber {self.id} {self.email} {self.status.value}>"



# One row per address, whatever its case (an expression index; Alembic cannot see it).
Index("uq_subscribers_email_lower", func.lower(Subscriber.email), unique=True)
# The admin's search by the start of an address or a name (``audience/directory.py``). On
# PostgreSQL a LIKE 'prefix%' needs text_pattern_ops to use an index whatever the database's
# collation; SQLite's small databases do without (migration 0007 makes them on PostgreSQL only).
Index(
    "ix_subscribers_email_pattern",
    func.lower(Subscriber.email).label("email_pattern"),
    postgresql_ops={"email_pattern": "text_pattern_ops"},
).ddl_if(dialect="postgresql")
Index(
    "ix_subscribers_name_pattern",
    func.lower(Subscriber.name).label("name_pattern"),
    postgresql_ops={"name_pattern": "text_pattern_ops"},
).ddl_if(dialect="postgresql")
# Filtering by status (blocklisted are few) in id order, for keyset pages.
Index("ix_subscribers_status_id", Subscriber.status, Subscriber.id)


class MailingList(db.Model):  # type: ignore[name-defined]
    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    public: Mapped[bool] = mapped_column(default=True)
    optin: Mapped[OptIn] = mapped_column(enum_column(OptIn), default=OptIn.DOUBLE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: set when archived: gone from the signup form and the compose pickers, kept with its
    #: subscribers and past issues, and visible in the admin under a filter
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: a welcome mail when a subscription to this list is confirmed
    welcome_enabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: its subject and intro text; empty: the built-in words
    welcome_subject: Mapped[str] = mapped_column(
        String(200), default="", server_default=text("''")
    )
    welcome_text: Mapped[str] = mapped_column(Text, default="", server_default=text("''"))

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="list", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return (
            f"<MailingList {self.slug} {self.optin.value}{'' if self.public else ' private'}"
            f"{' archived' if self.archived_at else ''}>"
        )


class Subscription(db.Model):  # type: ignore[name-defined]
    __tablename__ = "subscriptions"
    __table_args__ = (Index("ix_subscriptions_list_id_status", "list_id", "status"),)

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    list_id: Mapped[int] = mapped_column(
        ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[SubscriptionStatus] = mapped_column(
        enum_column(SubscriptionStatus), default=SubscriptionStatus.UNCONFIRMED
    )
    consent_source: Mapped[ConsentSource] = mapped_column(enum_column(ConsentSource))
    #: what the person's IP address the setting CONSENT_IP lets us keep (None: off)
    consent_ip: Mapped[str | None] = mapped_column(String(45))
    #: who or what asked: the API token's name, the import's file and label, the admin user
    consent_detail: Mapped[str | None] = mapped_column(Text)
    #: the page consent was given on (a path on our own site, or another site's URL)
    consent_page: Mapped[str | None] = mapped_column(String(500))
    consent_user_agent: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")
    list: Mapped[MailingList] = relationship(back_populates="subscriptions")

    def __repr__(self) -> str:
        return f"<Subscription {self.subscriber_id}→{self.list_id} {self.status.value}>"


# How often each (list, status) pair occurs, kept by ANALYZE: the lists page shows the large
# counts from it instead of counting a million rows (``audience/list_counts.py``; migration
# 0020 makes it on PostgreSQL databases made by migrations).
event.listen(
    Subscription.__table__,
    "after_create",
    DDL(
        "CREATE STATISTICS IF NOT EXISTS st_subscriptions_list_id_status (mcv) "
        "ON list_id, status FROM subscriptions"
    ).execute_if(dialect="postgresql"),
)


class ImportMode(enum.Enum):
    """What an import does to the addresses it reads."""

    SUBSCRIBE = "subscribe"  # subscribed and confirmed: they agreed elsewhere
    UNCONFIRMED = "unconfirmed"  # subscribed unconfirmed; a confirmation mail asks them
    UNSUBSCRIBE = "unsubscribe"  # unsubscribed from the list (every list when none is named)
    BLOCKLIST = "blocklist"  # never mailed again


class ImportJobStatus(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # refused whole, or stopped by an error; ``error`` says which


class ImportJob(db.Model):  # type: ignore[name-defined]
    """An upload being imported by a worker, chunk by chunk.

    ``offset``/``line`` say where the next chunk starts; they are committed in the same
    transaction as the chunk before them, so a worker that dies resumes there.
    """

    __tablename__ = "import_jobs"
    __table_args__ = (Index("ix_import_jobs_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    file_path: Mapped[str] = mapped_column(String(500))
    file_name: Mapped[str] = mapped_column(String(255), default="")
    report_path: Mapped[str] = mapped_column(String(500), default="")
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="SET NULL"))
    mode: Mapped[ImportMode] = mapped_column(enum_column(ImportMode))
    #: overwrite, send_confirmations, encoding, delimiter
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[ImportJobStatus] = mapped_column(
        enum_column(ImportJobStatus), default=ImportJobStatus.QUEUED
    )
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes done
    line: Mapped[int] = mapped_column(default=1)  # the number of the next line to read
    report_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_done: Mapped[int] = mapped_column(default=0)
    rows_total: Mapped[int | None] = mapped_column()  # known once the file is read
    imported: Mapped[int] = mapped_column(default=0)
    bad: Mapped[int] = mapped_column(default=0)
    #: the importer's counts so far (created, updated, subscribed, …)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: a running job's worker renews this at every chunk; past it, recovery runs it again
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"<ImportJob {self.id} {self.mode.value} {self.status.value} line {self.line}>"
