"""Lists: double opt-in and public unless told otherwise; slugs are unique and tidy."""

from __future__ import annotations

import pytest
from flask import Flask

from newsletter.audience.lists import create_list, get_list_by_slug, list_lists
from newsletter.audience.models import OptIn
from newsletter.errors import Conflict, NotFound, ValidationError


def test_a_new_list_is_double_opt_in_and_public(app: Flask) -> None:
    lst = create_list("news", "Movement News", description="Weekly round-up")
    assert (lst.optin, lst.public, lst.description) == (OptIn.DOUBLE, True, "Weekly round-up")
    assert get_list_by_slug("news").id == lst.id


def test_a_taken_slug_is_a_conflict(app: Flask) -> None:
    create_list("news", "Movement News")
    with pytest.raises(Conflict) as raised:
        create_list("news", "Other")
    assert raised.value.field == "slug"


@pytest.mark.parametrize("slug", ["", "News", "with space", "-news", "news-", "ü", "a" * 101])
def test_a_bad_slug_is_refused(app: Flask, slug: str) -> None:
    with pytest.raises(ValidationError) as raised:
        create_list(slug, "Name")
    assert raised.value.field == "slug"


def test_a_list_needs_a_name(app: Flask) -> None:
    with pytest.raises(ValidationError) as raised:
        create_list("news", "  ")
    assert raised.value.field == "name"


def test_private_lists_are_left_out_of_the_public_ones(app: Flask) -> None:
    create_list("news", "News")
    create_list("board", "Board", public=False, optin=OptIn.SINGLE)
    assert [lst.slug for lst in list_lists()] == ["board", "news"]
    assert [lst.slug for lst in list_lists(public_only=True)] == ["news"]


def test_an_unknown_slug_is_not_found(app: Flask) -> None:
    with pytest.raises(NotFound) as raised:
        get_list_by_slug("nope")
    assert (raised.value.kind, raised.value.key) == ("list", "nope")
