"""Issues: create and edit drafts with validation that names the field."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from newsletter.content.issues import (
    create_issue,
    get_issue,
    list_issues,
    update_issue,
)
from newsletter.content.models import Issue, IssueStatus
from newsletter.content.templates import default_template
from newsletter.errors import IssueStateError, NotFound, ValidationError
from newsletter.extensions import db
from newsletter.mail.render import render_issue
from tests.factories import make_issue, make_list, make_statement


def test_create_issue_keeps_statement_order_lists_and_default_template(app: Flask) -> None:
    first, second = make_statement(), make_statement()
    news, extra = make_list("news"), make_list("extra")

    issue = create_issue(
        subject="  This   week ",
        statement_ids=[second.id, first.id, second.id],
        list_slugs=["news", "extra"],
        preheader="Short preview",
        intro="Hello *all*",
    )

    assert issue.id is not None
    assert issue.status is IssueStatus.DRAFT
    assert issue.subject == "This week"
    assert [s.id for s in issue.statements] == [second.id, first.id]
    assert [item.position for item in issue.items] == [0, 1]
    assert {lst.slug for lst in issue.lists} == {news.slug, extra.slug}
    assert issue.template is not None and issue.template.id == default_template().id
    assert issue.preheader == "Short preview" and issue.intro == "Hello *all*"


@pytest.mark.parametrize(
    ("fields", "error", "field"),
    [
        ({"subject": "   "}, ValidationError, "subject"),
        ({"subject": "x" * 301}, ValidationError, "subject"),
        ({"statement_ids": []}, ValidationError, "statements"),
        ({"statement_ids": [999]}, NotFound, "statements"),
        ({"list_slugs": []}, ValidationError, "lists"),
        ({"list_slugs": ["nope"]}, NotFound, "lists"),
        ({"template_id": 999}, NotFound, "template"),
        ({"preheader": "p" * 301}, ValidationError, "preheader"),
    ],
)
def test_create_issue_validation_names_the_field(
    app: Flask, fields: dict[str, object], error: type[Exception], field: str
) -> None:
    statement = make_statement()
    make_list("news")
    arguments: dict[str, object] = {
        "subject": "Hi", "statement_ids": [statement.id], "list_slugs": ["news"],
    }  # fmt: skip
    arguments.update(fields)

    with pytest.raises(error) as caught:
        create_issue(**arguments)  # type: ignore[arg-type]

    assert caught.value.field == field  # type: ignore[attr-defined]
    assert list_issues() == []


def test_update_issue_changes_only_given_fields(app: Flask) -> None:
    first, second = make_statement(), make_statement()
    make_list("news")
    make_list("other")
    issue = create_issue(subject="Old", statement_ids=[first.id], list_slugs=["news"])

    updated = update_issue(issue.id, subject="New", statement_ids=[second.id, first.id])

    assert updated.subject == "New"
    assert [s.id for s in updated.statements] == [second.id, first.id]
    assert [lst.slug for lst in updated.lists] == ["news"]

    update_issue(issue.id, list_slugs=["other"])
    db.session.expire_all()
    assert [lst.slug for lst in get_issue(issue.id).lists] == ["other"]


def test_update_issue_with_a_bad_field_changes_nothing(app: Flask) -> None:
    statement = make_statement()
    make_list("news")
    issue = create_issue(subject="Old", statement_ids=[statement.id], list_slugs=["news"])

    with pytest.raises(NotFound):
        update_issue(issue.id, subject="New", list_slugs=["missing"])

    db.session.expire_all()
    assert get_issue(issue.id).subject == "Old"


@pytest.mark.parametrize("status", [IssueStatus.SENDING, IssueStatus.SENT, IssueStatus.SCHEDULED])
def test_only_drafts_can_be_edited(app: Flask, status: IssueStatus) -> None:
    issue = make_issue((make_statement(),), (make_list(),), status=status)

    with pytest.raises(IssueStateError) as caught:
        update_issue(issue.id, subject="Changed")

    assert caught.value.status == status.value
    assert caught.value.action == "edit"


def test_a_statement_in_an_issue_cannot_be_deleted_and_the_issue_still_renders(
    app: Flask,
) -> None:
    statement = make_statement(title="Kept")
    issue = make_issue((statement,), (make_list("news"),))

    db.session.delete(statement)
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()

    assert "Kept" in render_issue(issue).text


@pytest.mark.parametrize("field", ["subject", "preheader", "intro"])
def test_an_issue_field_with_a_nul_character_is_a_validation_error(
    app: Flask, field: str
) -> None:
    statement = make_statement()
    make_list("news")
    fields = {"subject": "Hello", field: "Hel\x00lo"}

    with pytest.raises(ValidationError) as caught:
        create_issue(statement_ids=[statement.id], list_slugs=["news"], **fields)
    assert caught.value.field == field
    db.session.rollback()
    assert db.session.scalars(select(Issue)).all() == []


def test_get_and_list_issues_newest_first(app: Flask) -> None:
    statement, lst = make_statement(), make_list()
    older = make_issue((statement,), (lst,), subject="Older")
    newer = make_issue((statement,), (lst,), subject="Newer")

    assert [i.id for i in list_issues()] == [newer.id, older.id]
    assert get_issue(older.id).subject == "Older"
    with pytest.raises(NotFound):
        get_issue(12345)

