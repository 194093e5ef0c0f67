"""Accounts of the admin pages: passwords (argon2id), API tokens and the first-admin link."""

from __future__ import annotations

import functools
import secrets
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from newsletter.auth import sessions, tokens
from newsletter.auth.models import Role, User
from newsletter.errors import Conflict, InvalidEmail, InvalidToken, NotFound, ValidationError
from newsletter.extensions import db
from newsletter.models import utcnow
from newsletter.signing import sign, unsign

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a cap stops hashing megabytes per request
TOKEN_PREFIX = tokens.TOKEN_PREFIX
SETUP_PURPOSE = "setup"
#: the start of ``password_hash`` for an invited user who has not chosen a password yet (no
#: argon2 hash starts so, so no password matches it)
PENDING_PREFIX = "!invited:"

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the address is unknown, so that answer takes as long as a wrong
    password. Made on first use: hashing takes argon2's 64 MiB, which at import would raise
    the peak memory of every process (workers and commands included)."""
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salt and parameters included in the string)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; False for a wrong or broken hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password(password: str) -> None:
    """Refuse a password too short (or absurdly long) to keep.

    :raises ValidationError: with field ``password``.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(
            f"the password must have at most {MAX_PASSWORD_LENGTH} characters", field="password"
        )


def _normalise_email(address: str) -> str:
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise InvalidEmail(address, str(error)) from None


def find_user(email: str) -> User | None:
    """The user with this address, whatever its case."""
    return db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def create_user(email: str, password: str, role: Role = Role.ADMIN) -> User:
    """Make a user who can log in to the admin pages.

    :raises InvalidEmail: the address is not valid.
    :raises ValidationError: the password is too short (field ``password``).
    :raises Conflict: a user with this address exists (field ``email``).
    """
    address = _normalise_email(email)
    check_password(password)
    if find_user(address) is not None:
        raise Conflict(f"a user {address} already exists", field="email")
    user = User(email=address, password_hash=hash_password(password), role=role)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:  # created meanwhile by someone else
        db.session.rollback()
        raise Conflict(f"a user {address} already exists", field="email") from None
    return user


def is_pending(user: User) -> bool:
    """True for an invited user who has not set a password yet."""
    return user.password_hash.startswith(PENDING_PREFIX)


def set_password(user: User, password: str) -> None:
    """Give ``user`` a new password and end every session they have.

    :raises ValidationError: the password is too short or too long (field ``password``).
    """
    check_password(password)
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    db.session.commit()
    sessions.revoke(user)


def change_password(user: User, current: str, new: str) -> None:
    """Change a logged-in user's password, which needs the current one. Every session of the
    user ends; the caller re-stamps the one that asked (``sessions.stamp``).

    :raises ValidationError: the current password is wrong (field ``current``), or the new
        one is not acceptable (field ``password``).
    """
    if len(current) > MAX_PASSWORD_LENGTH or not verify_password(user.password_hash, current):
        raise ValidationError("that is not your current password", field="current")
    set_password(user, new)


def authenticate(email: str, password: str) -> User | None:
    """The active user with this address and password, or None.

    Spends about the same time whether or not the address exists, upgrades the hash when
    the hashing parameters have changed, and records the login time.
    """
    user = find_user(email)
    if user is None or not user.active or is_pending(user):
        verify_password(_dummy_hash(), password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    db.session.commit()
    return user


def create_api_token(email: str) -> str:
    """A new API token with every scope for the user; only its SHA-256 is kept, so this is
    the one chance to see it (``tokens.create_token`` takes a name, scopes and an expiry).

    :raises NotFound: no user has this address.
    """
    user = find_user(email)
    if user is None:
        raise NotFound("user", email)
    return tokens.create_token(user).secret


def user_for_token(token: str) -> User | None:
    """The active user owning this live API token, or None; records when it was used."""
    row = tokens.token_for(token)
    return row.user if row is not None else None


def needs_first_admin() -> bool:
    """True while no user exists: the first one is made through the setup link."""
    return db.session.scalar(select(func.count()).select_from(User)) == 0


def site_url(endpoint: str, **values: str | int) -> str:
    """An absolute link into the site built from ``BASE_URL``, never from the request's Host
    header (a forged Host must not put another site into a mailed link)."""
    base = urlsplit(current_app.config["BASE_URL"])
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme
    )
    return adapter.build(endpoint, values, force_external=True)


def first_admin_setup_url() -> str:
    """A signed, expiring, absolute link to the page that creates the first admin.

    The link only works while no user exists (``SETUP_MAX_AGE`` seconds at most).
    """
    return site_url("admin.setup", token=sign(SETUP_PURPOSE))


def check_setup_token(token: str) -> None:
    """Accept a setup link only if it is genuine, fresh, and no user exists yet.

    :raises InvalidToken: purpose ``setup``, reason ``invalid``, ``expired`` or ``used``.
    """
    unsign(SETUP_PURPOSE, token, int(current_app.config["SETUP_MAX_AGE"]))
    if not needs_first_admin():
        raise InvalidToken(SETUP_PURPOSE, "used")


def create_first_admin(token: str, email: str, password: str) -> User:
    """Make the first admin through a setup link.

    :raises InvalidToken: see ``check_setup_token``.
    :raises InvalidEmail, ValidationError, Conflict: see ``create_user``.
    """
    check_setup_token(token)
    return create_user(email, password, role=Role.ADMIN)
