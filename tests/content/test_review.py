"""Review: a bad file in a folder import gets a clear error and the others are imported, on
SQLite and on PostgreSQL alike (PostgreSQL refuses NUL characters and NaN in JSON)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from newsletter.content.issues import create_issue
from newsletter.content.models import Issue, Statement
from newsletter.content.statements import import_paths, parse_statement
from newsletter.errors import InvalidStatement, ValidationError
from newsletter.extensions import db
from newsletter.mail.render import render_issue
from tests.factories import make_issue, make_list, make_statement


def test_a_file_with_nul_characters_is_reported_and_the_others_are_imported(
    app: Flask, tmp_path: Path
) -> None:
    (tmp_path / "2021-01-01-first.md").write_text("---\ntitle: First\n---\nOne\n")
    (tmp_path / "2021-01-02-binary.md").write_bytes(b"---\ntitle: Binary\n---\nTw\x00o\n")
    (tmp_path / "2021-01-03-third.md").write_text("---\ntitle: Third\n---\nThree\n")

    report = import_paths([tmp_path])

    assert sorted(s.slug for s in report.created) == ["first", "third"]
    (source, reason), = report.errors
    assert source.endswith("2021-01-02-binary.md") and "NUL" in reason
    assert db.session.scalar(select(Statement).where(Statement.slug == "binary")) is None


def test_nul_characters_anywhere_are_refused_with_the_reason() -> None:
    with pytest.raises(InvalidStatement) as caught:
        parse_statement("# Title\n\nBody \x00 text\n", "post.md")
    assert "NUL" in caught.value.reason


def test_front_matter_with_nan_or_infinity_is_kept_as_text(app: Flask, tmp_path: Path) -> None:
    (tmp_path / "2021-01-01-odd.md").write_text(
        "---\ntitle: Odd\nscore: .nan\nlimit: .inf\nfloor: -.inf\nratio: 0.5\n---\nText\n"
    )
    (tmp_path / "2021-01-02-next.md").write_text("---\ntitle: Next\n---\nText\n")

    report = import_paths([tmp_path])

    assert report.errors == []
    assert sorted(s.slug for s in report.created) == ["next", "odd"]
    db.session.expire_all()
    odd = db.session.scalars(select(Statement).where(Statement.slug == "odd")).one()
    assert odd.front_matter["ratio"] == 0.5
    assert odd.front_matter["score"] == "nan"
    assert (odd.front_matter["limit"], odd.front_matter["floor"]) == ("inf", "-inf")


def test_reimporting_a_folder_updates_by_slug_and_never_duplicates(
    app: Flask, tmp_path: Path
) -> None:
    post = tmp_path / "2021-01-01-first.md"
    post.write_text("---\ntitle: First\n---\nOne\n")
    import_paths([tmp_path])
    post.write_text("---\ntitle: First, corrected\n---\nOne, corrected\n")

    report = import_paths([tmp_path])

    assert [s.slug for s in report.updated] == ["first"] and report.created == []
    (stored,) = db.session.scalars(select(Statement)).all()
    assert stored.title == "First, corrected" and stored.body == "One, corrected\n"


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
