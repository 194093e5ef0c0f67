"""Login sessions that end: revocable on the server, with an idle and an absolute timeout.

The session lives in Flask's signed cookie, so a copy of the cookie would otherwise work
for as long as its signature does. Three stamps in it make it end:

- the user's ``session_version`` at login: bumping the version (logout, password change,
  deactivation) ends every session of that user at once, copies of the cookie included;
- the login time: a session ends ``SESSION_MAX_HOURS`` after it, whatever happens;
- the time of the last request: a session unused for ``SESSION_IDLE_MINUTES`` ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from typing import Any

from flask import current_app, session
from flask_login import login_user, logout_user
from sqlalchemy import update

from newsletter.auth.models import User
from newsletter.extensions import db

VERSION_KEY = "_nl_version"
LOGIN_AT_KEY = "_nl_login_at"
SEEN_AT_KEY = "_nl_seen_at"
#: the last-seen stamp is rewritten at most this often, so not every request sets a cookie
TOUCH_EVERY_SECONDS = 60

#: the wall clock, in seconds (tests replace it)
clock: Callable[[], float] = time.time


def start(user: User) -> None:
    """Log ``user`` in with a fresh session stamped with their session version."""
    forget()  # no stamp from an earlier login carries over
    login_user(user)
    stamp(user)
    now = int(clock())
    session[LOGIN_AT_KEY] = now
    session[SEEN_AT_KEY] = now


def stamp(user: User) -> None:
    """Copy the user's current session version into this session (after a bump made here:
    a password change keeps the person who made it logged in)."""
    session[VERSION_KEY] = user.session_version


def is_valid(user: User, data: MutableMapping[str, Any] | None = None) -> bool:
    """True when the session ``data`` (this request's session) may act as ``user``: the user
    is active, the versions match, and neither timeout has passed."""
    data = session if data is None else data
    if not user.active or data.get(VERSION_KEY) != user.session_version:
        return False
    login_at, seen_at = data.get(LOGIN_AT_KEY), data.get(SEEN_AT_KEY)
    if not isinstance(login_at, int | float) or not isinstance(seen_at, int | float):
        return False
    now = clock()
    return now - login_at < max_seconds() and now - seen_at < idle_seconds()


def touch() -> None:
    """Record that the session was used now (called for each request a person makes)."""
    now = int(clock())
    if now - int(session.get(SEEN_AT_KEY) or 0) >= TOUCH_EVERY_SECONDS:
        session[SEEN_AT_KEY] = now


def end(user: Any) -> None:
    """Log out, ending every session of ``user`` (cookie copies too)."""
    if getattr(user, "is_authenticated", False):
        revoke(user)
    logout_user()
    forget()


def forget() -> None:
    """Drop this session's login stamps (a session that has ended)."""
    for key in (VERSION_KEY, LOGIN_AT_KEY, SEEN_AT_KEY, "_user_id", "_fresh", "_id"):
        session.pop(key, None)


def revoke(user: User) -> None:
    """Bump the user's session version, in the database, so no existing session holds."""
    db.session.execute(
        update(User)
        .where(User.id == user.id)
        .values(session_version=User.session_version + 1)
    )
    db.session.commit()
    db.session.refresh(user)


def has_login() -> bool:
    """True when this request's session names a user (valid or not)."""
    return "_user_id" in session


def idle_seconds() -> float:
    return float(current_app.config["SESSION_IDLE_MINUTES"]) * 60


def max_seconds() -> float:
    return float(current_app.config["SESSION_MAX_HOURS"]) * 3600
