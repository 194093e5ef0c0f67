"""The time-zone picker: common zones first, no compatibility aliases, UTC kept; stored and
typed names are still accepted, aliases included."""

from __future__ import annotations

from flask import Flask

from newsletter.delivery.control import timezones
from tests.web.admin_browser import logged_in_admin


def test_common_zones_come_first_and_aliases_are_gone() -> None:
    common, rest = timezones.picker_names()
    assert common[0] == "UTC"
    assert {"Europe/Berlin", "America/New_York", "Asia/Tokyo"} <= set(common)
    assert rest == sorted(rest) and not set(common) & set(rest)
    offered = set(common) | set(rest)
    for alias in ("Factory", "EST5EDT", "GMT", "Etc/GMT+3", "US/Eastern", "Asia/Calcutta",
                  "Universal", "Zulu"):
        assert alias not in offered, alias
    assert {"Europe/Lisbon", "Pacific/Auckland", "America/Argentina/Buenos_Aires"} <= offered


def test_a_stored_alias_is_still_valid_and_shown_as_chosen() -> None:
    assert timezones.check_timezone("US/Eastern") == "US/Eastern"
    groups = timezones.picker_choices("US/Eastern")
    assert groups["Common time zones"][0] == ("US/Eastern", "US/Eastern")
    assert list(groups) == ["Common time zones", "All time zones"]


def test_the_profile_page_offers_the_common_zones_first(app: Flask) -> None:
    page = logged_in_admin(app).get("/admin/profile").get_data(as_text=True)
    assert page.index('<optgroup label="Common time zones">') < page.index('value="UTC"')
    assert page.index('value="Europe/Berlin"') < page.index('<optgroup label="All time zones">')
    assert 'value="Factory"' not in page
