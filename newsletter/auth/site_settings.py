"""Settings an admin changes in the admin pages, kept in the database (``SiteSetting``)."""

from __future__ import annotations

from typing import Any

from newsletter.auth.models import SiteSetting
from newsletter.extensions import db

#: every user must have a second factor; those without one are sent to enrol after the password
REQUIRE_TWO_FACTOR = "require_two_factor"


def get_setting(key: str, default: Any = None) -> Any:
    """The value stored under ``key``, or ``default`` when none is."""
    row = db.session.get(SiteSetting, key)
    return default if row is None else row.value


def set_setting(key: str, value: Any) -> None:
    """Store ``value`` (anything JSON can hold) under ``key`` and commit."""
    row = db.session.get(SiteSetting, key)
    if row is None:
        db.session.add(SiteSetting(key=key, value=value))
    else:
        row.value = value
    db.session.commit()


def two_factor_required() -> bool:
    """True when an admin requires a second factor of everyone."""
    return bool(get_setting(REQUIRE_TWO_FACTOR, False))
