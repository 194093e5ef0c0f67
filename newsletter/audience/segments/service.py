"""Saved segments: create, change, delete, look up, and count who a query holds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select

from newsletter.audience.models import Subscriber
from newsletter.audience.segments.compile import compile_tree
from newsletter.audience.segments.models import Segment
from newsletter.audience.segments.query import parse
from newsletter.errors import Conflict, ValidationError
from newsletter.extensions import db
from newsletter.models import get_or_raise

MAX_NAME = 200

subscribers = Subscriber.__table__


def dialect_name() -> str:
    """The session's database dialect (``postgresql`` or ``sqlite``)."""
    return str(db.session.get_bind().dialect.name)


def condition(query: str) -> ColumnElement[bool]:
    """The SQL condition on ``subscribers`` for a query, in the session's dialect.

    :raises SegmentQueryError: the query is not valid (``position`` names where).
    """
    return compile_tree(parse(query), dialect_name())


def count_matching(query: str) -> int:
    """How many subscribers (of any status) the query matches.

    :raises SegmentQueryError: the query is not valid.
    """
    where = condition(query)
    return int(db.session.scalar(select(func.count()).select_from(subscribers).where(where)) or 0)


def create_segment(name: str, query: str, *, created_by: int | None = None) -> Segment:
    """Save a segment.

    :raises ValidationError: an empty or too long name (``field="name"``).
    :raises SegmentQueryError: the query is not valid (``field="query"``).
    :raises Conflict: another segment has this name.
    """
    segment = Segment(created_by=created_by)
    _apply(segment, name=name, query=query)
    db.session.add(segment)
    db.session.commit()
    return segment


def update_segment(segment_id: int, **fields: Any) -> Segment:
    """Change a segment's ``name`` and/or ``query`` (only those given).

    :raises NotFound: no such segment.
    :raises ValidationError, SegmentQueryError, Conflict: as for ``create_segment``.
    """
    unknown = set(fields) - {"name", "query"}
    if unknown:
        raise TypeError(f"update_segment() got unexpected fields {sorted(unknown)}")
    segment = get_segment(segment_id)
    _apply(segment, **fields)
    db.session.commit()
    return segment


def delete_segment(segment_id: int) -> None:
    """Delete a segment (issues that targeted it no longer do).

    :raises NotFound: no such segment.
    """
    db.session.delete(get_segment(segment_id))
    db.session.commit()


def get_segment(segment_id: int) -> Segment:
    """The segment with this id.

    :raises NotFound: no such segment.
    """
    return get_or_raise(Segment, segment_id, "segment")


def list_segments() -> list[Segment]:
    """Every segment, by name."""
    return list(db.session.scalars(select(Segment).order_by(Segment.name, Segment.id)))


def _apply(segment: Segment, **fields: Any) -> None:
    if "name" in fields:
        name = " ".join(str(fields["name"] or "").split())
        if not name:
            raise ValidationError("A segment needs a name.", field="name")
        if len(name) > MAX_NAME or "\x00" in name:
            raise ValidationError(f"A segment name has at most {MAX_NAME} characters.",
                                  field="name")
        taken = db.session.scalar(
            select(Segment.id).where(Segment.name == name, Segment.id != (segment.id or 0))
        )
        if taken is not None:
            raise Conflict(f"a segment named {name!r} exists already", field="name")
        segment.name = name
    if "query" in fields:
        query = str(fields["query"] or "").strip()
        parse(query)  # raises with the position
        segment.query = query
