"""Factories for test data, written straight to the database (no service rules applied)."""

from __future__ import annotations

from datetime import date
from itertools import count
from typing import Any

from newsletter.audience.models import (
    ConsentSource,
    MailingList,
    OptIn,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from newsletter.content.models import Issue, IssueStatement, Statement
from newsletter.extensions import db

_numbers = count(1)


def make_list(slug: str | None = None, **fields: Any) -> MailingList:
    number = next(_numbers)
    lst = MailingList(
        slug=slug or f"list-{number}",
        name=fields.pop("name", f"List {number}"),
        optin=fields.pop("optin", OptIn.DOUBLE),
        public=fields.pop("public", True),
        **fields,
    )
    db.session.add(lst)
    db.session.commit()
    return lst


def make_subscriber(
    email: str | None = None,
    *,
    lists: tuple[MailingList, ...] = (),
    status: SubscriptionStatus = SubscriptionStatus.CONFIRMED,
    **fields: Any,
) -> Subscriber:
    number = next(_numbers)
    subscriber = Subscriber(
        email=email or f"reader{number}@example.com", name=fields.pop("name", f"Reader {number}"),
        **fields,
    )
    for lst in lists:
        subscriber.subscriptions.append(
            Subscription(list=lst, status=status, consent_source=ConsentSource.ADMIN)
        )
    db.session.add(subscriber)
    db.session.commit()
    return subscriber


def make_statement(slug: str | None = None, **fields: Any) -> Statement:
    number = next(_numbers)
    statement = Statement(
        slug=slug or f"statement-{number}",
        title=fields.pop("title", f"Statement {number}"),
        author=fields.pop("author", "The Collective"),
        date=fields.pop("date", date(2020, 11, 3)),
        body=fields.pop("body", "We say *this*, and [link](https://example.org/more)."),
        front_matter=fields.pop("front_matter", {"layout": "post"}),
        **fields,
    )
    db.session.add(statement)
    db.session.commit()
    return statement


def make_issue(
    statements: tuple[Statement, ...], lists: tuple[MailingList, ...], **fields: Any
) -> Issue:
    issue = Issue(subject=fields.pop("subject", "This week"), **fields)
    issue.items = [IssueStatement(statement=s) for s in statements]
    issue.lists = list(lists)
    db.session.add(issue)
    db.session.commit()
    return issue
