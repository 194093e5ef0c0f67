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
