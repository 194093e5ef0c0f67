"""Security review of the audience services: odd input is a clear error, never a crash."""

from __future__ import annotations

import pytest
from flask import Flask

from newsletter.audience.lists import create_list, get_list_by_slug
from newsletter.errors import NotFound, ValidationError
from tests.factories import make_list


def test_a_slug_holding_nul_names_no_list(app: Flask) -> None:
    make_list("news")
    with pytest.raises(NotFound):
        get_list_by_slug("news\x00")


@pytest.mark.parametrize("field", ["name", "description"])
def test_a_list_name_or_description_holding_nul_is_refused(app: Flask, field: str) -> None:
    values = {"name": "News", "description": "", field: "Ne\x00ws"}
    with pytest.raises(ValidationError) as caught:
        create_list("news", values["name"], description=values["description"])
    assert caught.value.field == field


@pytest.mark.parametrize(
    "text",
    [
        "email," + "x" * 200_000 + "\na@example.org,A\n",  # a header over the line cap
    ],
)
def test_a_csv_header_the_reader_cannot_read_is_a_clear_error(app: Flask, text: str) -> None:
    import io

    from newsletter.audience.importer import import_csv
    from newsletter.audience.models import Subscriber
    from newsletter.extensions import db

    make_list("news")
    with pytest.raises(ValidationError) as caught:
        import_csv(io.StringIO(text), list_slug="news")
    assert caught.value.field == "file"
    assert "line" in caught.value.message
    assert db.session.query(Subscriber).count() == 0  # nothing half-imported


def test_a_row_over_the_line_cap_is_a_bad_row_and_the_others_are_imported(app: Flask) -> None:
    import io

    from newsletter.audience.importer import import_csv
    from newsletter.audience.models import Subscriber
    from newsletter.extensions import db

    make_list("news")
    text = "email,name\na@example.org," + "x" * 200_000 + "\nb@example.org,B\n"
    result = import_csv(io.StringIO(text), list_slug="news")
    assert [line for line, _ in result.bad_rows] == [2]
    assert [s.email for s in db.session.query(Subscriber)] == ["b@example.org"]

