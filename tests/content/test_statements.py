"""Statements from Jekyll posts: front matter, file names, import of files and folders."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from newsletter.content.models import Statement
from newsletter.content.statements import (
    MAX_FRONT_MATTER_CHARS,
    MAX_STATEMENT_CHARS,
    get_statement,
    import_paths,
    import_statement,
    list_statements,
    parse_statement,
    slugify,
    statement_html,
)
from newsletter.errors import InvalidStatement, NotFound
from newsletter.extensions import db
from tests.factories import make_statement
from tests.helpers import SEED_STATEMENT


def test_seed_statement_parses_with_front_matter_and_jekyll_name() -> None:
    data = parse_statement(SEED_STATEMENT.read_text(encoding="utf-8"), SEED_STATEMENT.name)

    assert data.slug == "post-election-mobilization"
    assert data.title == "An Anarchist Call for Post-election Mobilization"
    assert data.author == "MACC"
    assert data.date == date(2020, 11, 3)
    assert data.front_matter["layout"] == "post"
    assert data.front_matter["date"] == "2020-11-03"  # JSON-safe
    assert data.body.startswith('<a href= "https://twitter.com/macc_nyc')
    assert "---" not in data.body.splitlines()[0]


def test_front_matter_slug_and_date_win_over_the_file_name() -> None:
    text = "---\ntitle: Hello\nslug: Custom Slug\ndate: 2021-05-06 10:00:00 +0100\n---\nBody\n"
    data = parse_statement(text, "2020-01-02-from-name.md")

    assert data.slug == "custom-slug"
    assert data.date == date(2021, 5, 6)


def test_without_jekyll_name_the_slug_comes_from_the_title() -> None:
    data = parse_statement("---\ntitle: Ça va? Oui!\n---\nBody", "post.md")
    assert data.slug == "ca-va-oui"
    assert data.date is None


def test_no_front_matter_title_falls_back_to_the_first_heading() -> None:
    data = parse_statement("# A *Heading* Title\n\nThe text.\n", "2020-01-02-x.md")

    assert data.title == "A Heading Title"
    assert data.body == "The text.\n"  # the heading is the title, not repeated in the body
    assert data.slug == "x" and data.date == date(2020, 1, 2)


def test_heading_later_in_the_text_is_the_title_but_stays_in_the_body() -> None:
    data = parse_statement("Intro paragraph.\n\n## Section\n\nMore.\n")
    assert data.title == "Section"
    assert "## Section" in data.body


def test_authors_list_and_other_front_matter_kept() -> None:
    text = "---\ntitle: T\nauthors: [Ann, Bo]\ntags: [a, b]\nlayout: post\n---\nBody"
    data = parse_statement(text)

    assert data.author == "Ann, Bo"
    assert data.front_matter["tags"] == ["a", "b"]
    assert data.front_matter["layout"] == "post"


@pytest.mark.parametrize(
    ("text", "filename", "reason"),
    [
        ("---\ntitle: [unclosed\n---\nBody", "bad.md", "invalid YAML front matter"),
        ("---\n- a\n- b\n---\nBody", "list.md", "front matter must be a mapping"),
        ("Just some text without any heading.", "plain.md", "no title"),
        ("---\ntitle: Empty\n---\n\n   \n", "empty.md", "no text"),
        ("---\ntitle: T\ndate: someday\n---\nBody", "date.md", "not a date"),
        ("---\ntitle: T\n---\nBody", "2020-13-45-impossible.md", "impossible date"),
    ],
)
def test_bad_statements_raise_with_source_and_reason(text: str, filename: str, reason: str) -> None:
    with pytest.raises(InvalidStatement) as caught:
        parse_statement(text, filename)

    assert caught.value.source == filename
    assert reason in caught.value.reason
    assert caught.value.field == "markdown"


def test_invalid_yaml_says_which_line() -> None:
    with pytest.raises(InvalidStatement) as caught:
        parse_statement("---\ntitle: ok\nauthor: a: b\n---\nBody", "bad.md")
    assert "(line 3)" in caught.value.reason


# Input made to cost us: every one is refused (or parsed) at once, never expanded.


def billion_laughs(levels: int) -> str:
    """Front matter whose aliases expand to 10**levels items from a few hundred bytes."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, levels)]
    return "---\ntitle: Laughs\n" + "\n".join(lines) + "\n---\nBody\n"


@pytest.mark.parametrize(
    "text",
    [
        billion_laughs(10),  # 502 bytes, 10**10 items
        "---\ntitle: Loop\nx: &x [*x]\n---\nBody\n",  # a list that holds itself
        "---\ntitle: &t Twice\nagain: *t\n---\nBody\n",
        "---\nbase: &base {layout: post}\npost:\n  <<: *base\n---\n# T\nBody\n",
    ],
    ids=["billion-laughs", "self-reference", "plain-alias", "merge-key"],
)
def test_yaml_aliases_in_front_matter_are_refused_at_once(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidStatement) as caught:
        parse_statement(text, "bomb.md")
    assert time.perf_counter() - started < 1
    assert "aliases" in caught.value.reason and "(line " in caught.value.reason


def test_deeply_nested_front_matter_is_refused_not_a_crash() -> None:
    for opening in ("[", "{a: ", "- "):
        text = "---\ntitle: Deep\nx: " + opening * 5000 + "\n---\nBody\n"
        with pytest.raises(InvalidStatement) as caught:
            parse_statement(text, "deep.md")
        assert "invalid YAML front matter" in caught.value.reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2020-13-45", "invalid YAML front matter"),
        ("9" * 5000, "invalid YAML front matter"),
        ("!!timestamp nope", "explicit tags (!!type) are not allowed"),  # was an AttributeError
        ("!!python/object/apply:os.system [ls]", "explicit tags (!!type) are not allowed"),
    ],
    ids=["impossible-timestamp", "huge-integer", "explicit-tag", "python-tag"],
)
def test_a_front_matter_value_yaml_cannot_build_is_a_clear_error(value: str, reason: str) -> None:
    # Not silently read as a body that starts with "---".
    with pytest.raises(InvalidStatement) as caught:
        parse_statement(f"---\ntitle: T\nx: {value}\n---\nBody\n", "value.md")
    assert reason in caught.value.reason


def test_a_statement_over_the_size_cap_is_refused_before_parsing() -> None:
    text = "---\ntitle: Long\n---\n" + "word " * (MAX_STATEMENT_CHARS // 5)
    with pytest.raises(InvalidStatement) as caught:
        parse_statement(text, "long.md")
    assert "longer than" in caught.value.reason
    assert parse_statement(text[: MAX_STATEMENT_CHARS], "long.md").title == "Long"


def test_front_matter_over_its_own_cap_is_refused() -> None:
    text = "---\ntitle: Big\nnotes: " + "x" * MAX_FRONT_MATTER_CHARS + "\n---\nBody\n"
    with pytest.raises(InvalidStatement) as caught:
        parse_statement(text, "big.md")
    assert "front matter is longer than" in caught.value.reason


def test_a_heading_padded_with_spaces_is_read_in_linear_time() -> None:
    # The old pattern backtracked over every space: 16,000 of them took 3 s.
    started = time.perf_counter()
    data = parse_statement("# Title" + " " * 100_000 + "end\n\nBody\n")
    assert time.perf_counter() - started < 1
    assert data.title == "Title end"


@pytest.mark.parametrize(
    ("line", "title"),
    [
        ("# Title", "Title"),
        ("## Title ##", "Title"),
        ("### Title #\t", "Title"),
        ("# Title#", "Title#"),  # a closing run needs a space before it
        ("#\tTabbed", "Tabbed"),
        ("   # Indented", "Indented"),
        ("# C# and F#", "C# and F#"),
        ("# Hash # ##", "Hash #"),
    ],
)
def test_atx_headings_give_their_text_as_title(line: str, title: str) -> None:
    assert parse_statement(f"{line}\n\nBody\n").title == title


@pytest.mark.parametrize("line", ["#NoSpace", "####### Seven", "    # Code", "#", "# ##"])
def test_lines_that_are_not_atx_headings_give_no_title(line: str) -> None:
    with pytest.raises(InvalidStatement) as caught:
        parse_statement(f"{line}\n\nBody\n")
    assert "no title" in caught.value.reason


def test_slugify() -> None:
    assert slugify("  Hello, World!  ") == "hello-world"
    assert slugify("Über_Straße") == "uber-strasse"
    assert slugify("Всем привет") == "всем-привет"


def test_import_statement_creates_then_updates_by_slug(app: Flask) -> None:
    statement, created = import_statement(SEED_STATEMENT.read_text(), SEED_STATEMENT.name)
    assert created
    assert statement.id is not None

    changed = SEED_STATEMENT.read_text().replace("author: MACC", "author: MACC NYC")
    again, created_again = import_statement(changed, SEED_STATEMENT.name)

    assert not created_again
    assert again.id == statement.id
    assert again.author == "MACC NYC"
    assert db.session.query(Statement).count() == 1


def test_statement_html_is_the_cleaned_rendering(app: Flask) -> None:
    statement = make_statement(body='Hi <a href="javascript:x()" onclick="y()">there</a>')
    html = statement_html(statement)
    assert "there" in html and "javascript" not in html and "onclick" not in html


def test_import_paths_takes_files_and_folders_and_reports_each_bad_file(
    app: Flask, tmp_path: Path
) -> None:
    posts = tmp_path / "_posts"
    (posts / "2021").mkdir(parents=True)
    (posts / "2021-01-01-first.md").write_text("---\ntitle: First\n---\nOne")
    (posts / "2021" / "2021-02-01-second.markdown").write_text("---\ntitle: Second\n---\nTwo")
    (posts / "2021-03-01-broken.md").write_text("---\ntitle: [oops\n---\nThree")
    (posts / "notes.txt").write_text("not markdown")
    (posts / "latin1.md").write_bytes("---\ntitle: Caf\xe9\n---\nx".encode("latin-1"))

    report = import_paths([posts, SEED_STATEMENT, tmp_path / "missing.md"])

    assert sorted(s.slug for s in report.created) == [
        "first", "post-election-mobilization", "second",
    ]  # fmt: skip
    assert report.updated == []
    errors = dict(report.errors)
    assert "invalid YAML" in errors[str(posts / "2021-03-01-broken.md")]
    assert errors[str(posts / "latin1.md")] == "not UTF-8 text"
    assert errors[str(tmp_path / "missing.md")] == "no such file or folder"
    assert len(report.errors) == 3

    again = import_paths([posts / "2021-01-01-first.md"])
    assert [s.slug for s in again.updated] == ["first"] and again.created == []


def test_a_file_with_nul_characters_is_reported_and_the_others_are_imported(
    app: Flask, tmp_path: Path
) -> None:
    # PostgreSQL refuses NUL in text: one such file must not sink the whole folder.
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
    # PostgreSQL's JSON has no NaN or infinity.
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


def test_list_statements_newest_first_and_get(app: Flask) -> None:
    old = make_statement(date=date(2019, 1, 1))
    new = make_statement(date=date(2022, 1, 1))
    undated = make_statement(date=None)

    assert [s.id for s in list_statements()] == [new.id, old.id, undated.id]
    assert get_statement(old.id).slug == old.slug
    with pytest.raises(NotFound):
        get_statement(9999)


def test_cli_imports_and_exits_1_on_errors(runner: FlaskCliRunner, tmp_path: Path) -> None:
    good = tmp_path / "2021-01-01-good.md"
    good.write_text("---\ntitle: Good\n---\nText")
    bad = tmp_path / "bad.md"
    bad.write_text("no title here")

    result = runner.invoke(args=["statements", "import", str(SEED_STATEMENT), str(good)])
    assert result.exit_code == 0, result.output
    assert "created  post-election-mobilization" in result.output
    assert "2 created, 0 updated, 0 errors" in result.output

    result = runner.invoke(args=["statements", "import", str(tmp_path)])
    assert result.exit_code == 1
    assert "unchanged good" in result.output
    assert f"error    {bad}: no title" in result.output
    assert "0 created, 1 updated, 1 error" in result.output


def test_cli_needs_a_path(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["statements", "import"])
    assert result.exit_code != 0
    assert "Missing argument" in result.output
