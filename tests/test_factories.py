"""The factories and fixtures that other tests stand on."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.exc import IntegrityError

from newsletter.extensions import db
from tests.factories import make_issue, make_list, make_statement, make_subscriber


def test_addresses_are_unique_whatever_their_case(app: Flask) -> None:
    make_subscriber("Reader@Example.com")
    try:
        make_subscriber("reader@example.COM")
    except IntegrityError:
        db.session.rollback()
    else:  # pragma: no cover - the assertion below explains the failure
        raise AssertionError("a second subscriber with the same address was stored")


def test_issue_keeps_statement_order(app: Flask) -> None:
    news = make_list("news")
    first, second = make_statement(), make_statement()
    issue = make_issue((second, first), (news,))
    db.session.expire_all()
    assert [s.id for s in issue.statements] == [second.id, first.id]
