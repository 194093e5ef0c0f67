"""Saved segments, and which segments an issue targets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.extensions import db
from newsletter.models import UTCDateTime, utcnow


class Segment(db.Model):  # type: ignore[name-defined]
    """A saved filter over subscribers, written in the segment query language."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    query: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    #: who made it (None once that user is deleted)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    def __repr__(self) -> str:
        return f"<Segment {self.id} {self.name!r}>"


#: an issue's segments: its audience is narrowed by every one of them (AND)
issue_segments = Table(
    "issue_segments",
    db.metadata,
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "segment_id", Integer, ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True,
        index=True,
    ),
)
