"""A segment's tree → one SQL condition on ``subscribers``, every value a bound parameter.

The condition is Core SQL over ``subscribers`` (with correlated ``EXISTS`` for lists,
subscriptions and deliveries), so the same expression narrows an ``INSERT … SELECT`` in the
send's snapshot, a count and an export. It works on SQLite and PostgreSQL; where they differ
(JSON access, collation) the dialect's name picks the form.

What each comparison means, the same on both backends:

- Each comparison is true or false, never NULL: a missing attribute or a person with no
  confirmed subscription makes ``=``, ``<``, ``contains`` … false, and ``!=`` is always
  exactly ``not (… = …)`` (so ``attributes.city != "Madrid"`` holds people with no city).
- ``email`` compares case-insensitively; ``name`` and string attributes exactly; ``contains``
  ignores case (ASCII) everywhere; ``<``/``>`` on strings compare code points.
- ``attributes.KEY`` with a string value matches JSON strings; with a number, JSON numbers
  and strings that read as a decimal number (``"42"``, ``"-3.5"``: imported CSV columns are
  strings), compared as numbers; with ``true``/``false``, JSON booleans.
- ``list = "news"``: confirmed on the list with that slug (a slug no list has matches
  nobody). ``status``: the subscriber's status.
- ``subscribed_at``/``confirmed_at``: some subscription of theirs was made (confirmed) on
  that day (UTC), or before/after it; ``= "2024-05-01"`` is the whole day.
- ``received = ID``: a delivery of issue ID to them was sent.
- ``bounced``: **the one definition of a bounce for segments** — the subscriber is
  blocklisted (hard bounces and a soft-bounce score at the threshold blocklist), a hard
  bounce or a complaint was reported (``bounce_events``), or a delivery to them failed for
  good. It is defined in :func:`bounced`, and only there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from newsletter.audience.models import (
    MailingList,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.audience.segments.query import (
    And,
    Comparison,
    Node,
    Not,
    Or,
    Scalar,
    SegmentQueryError,
)
from newsletter.delivery.bounces.models import BounceEvent, BounceKind
from newsletter.delivery.models import Delivery, DeliveryStatus

subscribers = Subscriber.__table__
subscriptions = Subscription.__table__
lists = MailingList.__table__
deliveries = Delivery.__table__
bounce_events = BounceEvent.__table__

#: a string that reads as a decimal number (both backends run it: ``~`` and Python's ``re``)
NUMERIC = r"^\s*-?[0-9]+(\.[0-9]+)?\s*$"


def compile_tree(node: Node, dialect: str) -> ColumnElement[bool]:
    """The SQL condition on ``subscribers`` for a parsed query.

    :param dialect: ``"postgresql"`` or ``"sqlite"`` (the session's dialect name).
    """
    if isinstance(node, And):
        return and_(compile_tree(node.left, dialect), compile_tree(node.right, dialect))
    if isinstance(node, Or):
        return or_(compile_tree(node.left, dialect), compile_tree(node.right, dialect))
    if isinstance(node, Not):
        return not_(compile_tree(node.operand, dialect))
    return _comparison(node, dialect)


def _comparison(node: Comparison, dialect: str) -> ColumnElement[bool]:
    if node.op == "in":
        assert isinstance(node.value, tuple)
        return or_(*(_equal(node, value, dialect) for value in node.value))
    assert not isinstance(node.value, tuple)
    if node.op == "=":
        return _equal(node, node.value, dialect)
    if node.op == "!=":
        return not_(_equal(node, node.value, dialect))
    return _compare(node, node.op, node.value, dialect)


def _equal(node: Comparison, value: Scalar, dialect: str) -> ColumnElement[bool]:
    field = node.field
    if field == "list":
        return on_list(str(value))
    if field == "status":
        return subscribers.c.status == SubscriberStatus(value)
    if field == "received":
        assert isinstance(value, int)
        return received(value)
    if field == "bounced":
        return bounced() if value else not_(bounced())
    return _compare(node, "=", value, dialect)


def _compare(node: Comparison, op: str, value: Scalar, dialect: str) -> ColumnElement[bool]:
    field = node.field
    if field in ("subscribed_at", "confirmed_at"):
        assert isinstance(value, date)
        return _dated(field, op, value)
    if field == "email":
        column = func.lower(subscribers.c.email)
        return _string_op(column, op, str(value).lower(), dialect)
    if field == "name":
        return _string_op(subscribers.c.name, op, str(value), dialect)
    if field == "attributes":
        assert node.key is not None
        return _attribute(node.key, op, value, dialect)
    raise SegmentQueryError(node.position, f"{field} does not take {op}")  # the parser stops it


# --- strings and attributes ---------------------------------------------------------------


def _string_op(column: Any, op: str, value: str, dialect: str) -> ColumnElement[bool]:
    if op == "contains":
        return func.lower(column).contains(value.lower(), autoescape=True)
    if op in ("<", "<=", ">", ">=") and dialect == "postgresql":
        column = column.collate("C")  # code-point order, as SQLite compares
    return _ordered(column, op, literal(value, String))


def _ordered(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "=":
        return column == value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    raise ValueError(op)


def _attribute(key: str, op: str, value: Scalar, dialect: str) -> ColumnElement[bool]:
    kind, text = _json_parts(key, dialect)
    if isinstance(value, bool):
        if dialect == "postgresql":
            return and_(kind == "boolean", text == ("true" if value else "false"))
        return kind == ("true" if value else "false")
    if isinstance(value, int | float):
        number_kinds = ("number",) if dialect == "postgresql" else ("integer", "real")
        string_kind = "string" if dialect == "postgresql" else "text"
        number = case(
            (kind.in_(number_kinds), cast(text, Float)),
            (and_(kind == string_kind, text.regexp_match(NUMERIC)), cast(text, Float)),
            else_=None,
        )
        return and_(number.is_not(None), _ordered(number, op, literal(float(value), Float)))
    string_kind = "string" if dialect == "postgresql" else "text"
    return and_(kind == string_kind, _string_op(text, op, str(value), dialect))


def _json_parts(key: str, dialect: str) -> tuple[Any, Any]:
    """The JSON type name of ``attributes[key]`` and its value as text, in this dialect."""
    column = subscribers.c.attributes
    # A missing key has no type (NULL): "missing" keeps every comparison true or false.
    if dialect == "postgresql":
        # ``->`` and ``->>`` with the key bound; json_typeof names null, string, number, …
        kind = func.coalesce(func.json_typeof(column[key]), "missing")
        return kind, column[key].as_string()
    # SQLite: a JSON path, bound too; the key holds no quote or backslash (the parser checks)
    path = literal(f'$."{key}"', String)
    return func.coalesce(func.json_type(column, path), "missing"), func.json_extract(column, path)


# --- the other fields ---------------------------------------------------------------------


def on_list(slug: str) -> ColumnElement[bool]:
    """Confirmed on the list with this slug."""
    return exists().where(
        subscriptions.c.subscriber_id == subscribers.c.id,
        subscriptions.c.status == SubscriptionStatus.CONFIRMED,
        subscriptions.c.list_id.in_(select(lists.c.id).where(lists.c.slug == slug)),
    )


def received(issue_id: int) -> ColumnElement[bool]:
    """A delivery of this issue to them was sent."""
    return exists().where(
        deliveries.c.subscriber_id == subscribers.c.id,
        deliveries.c.issue_id == issue_id,
        deliveries.c.status == DeliveryStatus.SENT,
    )


def bounced() -> ColumnElement[bool]:
    """Bounced: blocklisted (a hard bounce, a soft-bounce score at the threshold, or by
    hand), a hard bounce or a complaint ever reported, or a delivery to them failed for good.

    The one place the segments define a bounce. A reinstated address that once bounced
    still counts, as a failed delivery always did: the events are its history.
    """
    failed = exists().where(
        deliveries.c.subscriber_id == subscribers.c.id,
        deliveries.c.status == DeliveryStatus.FAILED,
    )
    reported = exists().where(
        bounce_events.c.subscriber_id == subscribers.c.id,
        bounce_events.c.kind.in_([BounceKind.HARD, BounceKind.COMPLAINT]),
    )
    return or_(subscribers.c.status == SubscriberStatus.BLOCKLISTED, reported, failed)


def _dated(field: str, op: str, day: date) -> ColumnElement[bool]:
    column = (
        subscriptions.c.created_at if field == "subscribed_at" else subscriptions.c.confirmed_at
    )
    start = datetime.combine(day, time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    when = {
        "=": and_(column >= start, column < end),
        "<": column < start,
        "<=": column < end,
        ">": column >= end,
        ">=": column >= start,
    }[op]
    return exists().where(subscriptions.c.subscriber_id == subscribers.c.id, when)


def everything() -> ColumnElement[bool]:
    """The condition that holds for every subscriber."""
    return true()


def nothing() -> ColumnElement[bool]:
    """The condition that holds for nobody."""
    return false()
