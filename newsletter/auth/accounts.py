"""What admins do to accounts (invite, change role, allow sending, deactivate) and the two
links that set a password by mail: the invitation and the password reset.

Both links are signed and expire (``INVITE_MAX_AGE``, ``RESET_MAX_AGE``), and each works
once: it carries a digest of the password hash it was made for, and setting the password
changes the hash. A new invitation changes the pending marker, so older ones stop working.
Mail goes through ``queue_message``, the one door for mail that is not an issue.
"""

from __future__ import annotations

import hashlib
import secrets

from flask import current_app, render_template
from sqlalchemy import func, select

from newsletter.audience.addresses import normalise_email
from newsletter.auth import sessions
from newsletter.auth.models import Role, User
from newsletter.auth.services import (
    PENDING_PREFIX,
    find_user,
    is_pending,
    set_password,
    site_url,
)
from newsletter.delivery.transactional import queue_message
from newsletter.errors import Conflict, InvalidToken, NotFound
from newsletter.extensions import db
from newsletter.signing import sign, unsign

INVITE_PURPOSE = "invite"
RESET_PURPOSE = "password-reset"


def get_user(user_id: int) -> User:
    """:raises NotFound: no user has this id."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("user", user_id)
    return user


def list_users() -> list[User]:
    """Every user, by address."""
    return list(db.session.scalars(select(User).order_by(func.lower(User.email))))


# --- invitations -------------------------------------------------------------------------


def invite(email: str, role: Role, *, can_send: bool = False) -> User:
    """Make an account without a password and mail its owner a link to choose one.

    :raises InvalidEmail: the address is not valid.
    :raises Conflict: a user with this address exists (field ``email``).
    :raises ValidationError, TransactionalQueueError: the mail could not be queued.
    """
    address = normalise_email(email)
    if find_user(address) is not None:
        raise Conflict(f"a user {address} already exists", field="email")
    user = User(
        email=address,
        password_hash=_pending_marker(),
        role=role,
        can_send=can_send and role is Role.EDITOR,
    )
    db.session.add(user)
    db.session.commit()
    _mail_invitation(user)
    return user


def invite_again(user: User) -> None:
    """Mail a new invitation to a user who has not accepted one; older links stop working.

    :raises Conflict: the user has set a password already, or is deactivated.
    """
    if not is_pending(user) or not user.active:
        raise Conflict(f"{user.email} has no invitation to send again", field="email")
    user.password_hash = _pending_marker()
    db.session.commit()
    _mail_invitation(user)


def _pending_marker() -> str:
    return PENDING_PREFIX + secrets.token_urlsafe(16)


def site_url_for_invite(user: User) -> str:
    """The absolute invitation link for ``user`` (valid for ``INVITE_MAX_AGE`` seconds)."""
    return site_url("admin.accept_invite", token=_link_token(INVITE_PURPOSE, user))


def _mail_invitation(user: User) -> None:
    link = site_url_for_invite(user)
    days = max(1, round(int(current_app.config["INVITE_MAX_AGE"]) / 86400))
    _send(user, "invite", f"You are invited to {current_app.config['SITE_NAME']}",
          link=link, role=user.role.value, days=days)


def invited_user(token: str) -> User:
    """The pending user an invitation link is for.

    :raises InvalidToken: purpose ``invite``; reason ``invalid``, ``expired`` or ``used``.
    """
    user = _user_for_link(INVITE_PURPOSE, token, int(current_app.config["INVITE_MAX_AGE"]))
    if not is_pending(user):
        raise InvalidToken(INVITE_PURPOSE, "used")
    return user


def accept_invite(token: str, password: str) -> User:
    """Set the invited user's first password through their link (which then stops working).

    :raises InvalidToken: see ``invited_user``.
    :raises ValidationError: the password is not acceptable (field ``password``).
    """
    user = invited_user(token)
    set_password(user, password)
    return user


# --- password resets ---------------------------------------------------------------------


def request_reset(email: str) -> bool:
    """Mail a reset link when an active account has this address; say nothing either way.

    Returns whether a mail was queued (for logs and tests, never for the person asking).
    A failure to queue the mail is the caller's to log; it must not change what they show.
    """
    user = find_user(email)
    if user is None or not user.active:
        return False
    link = site_url_for_reset(user)
    minutes = max(1, round(int(current_app.config["RESET_MAX_AGE"]) / 60))
    _send(user, "password_reset", f"Reset your password for {current_app.config['SITE_NAME']}",
          link=link, minutes=minutes)
    return True


def site_url_for_reset(user: User) -> str:
    """The absolute reset link for ``user`` (valid for ``RESET_MAX_AGE`` seconds, once)."""
    return site_url("admin.reset_password", token=_link_token(RESET_PURPOSE, user))


def reset_user(token: str) -> User:
    """The user a reset link is for.

    :raises InvalidToken: purpose ``password-reset``; reason ``invalid``, ``expired``, ``used``.
    """
    return _user_for_link(RESET_PURPOSE, token, int(current_app.config["RESET_MAX_AGE"]))


def reset_password(token: str, password: str) -> User:
    """Set a new password through a reset link; every session of the user ends.

    :raises InvalidToken: see ``reset_user``.
    :raises ValidationError: the password is not acceptable (field ``password``).
    """
    user = reset_user(token)
    set_password(user, password)
    return user


# --- links -------------------------------------------------------------------------------


def _fingerprint(user: User) -> str:
    # Changes whenever the password (or the pending marker) does: that makes a link single-use.
    return hashlib.sha256(user.password_hash.encode("utf-8")).hexdigest()[:24]


def _link_token(purpose: str, user: User) -> str:
    return sign(purpose, u=user.id, h=_fingerprint(user))


def _user_for_link(purpose: str, token: str, max_age: int) -> User:
    payload = unsign(purpose, token, max_age)
    user_id = payload.get("u")
    user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or not user.active:
        raise InvalidToken(purpose, "invalid")
    if not secrets.compare_digest(str(payload.get("h", "")), _fingerprint(user)):
        raise InvalidToken(purpose, "used")
    return user


def _send(user: User, template: str, subject: str, **context: object) -> None:
    values = {"site_name": current_app.config["SITE_NAME"], "email": user.email, **context}
    queue_message(
        to=user.email,
        subject=subject,
        text=render_template(f"email/{template}.txt", **values),
        html=render_template(f"email/{template}.html", **values),
    )


# --- what admins change ------------------------------------------------------------------


def _other_active_admins(user: User) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.ADMIN, User.active.is_(True), User.id != user.id)
    ) or 0


def change_role(user: User, role: Role) -> None:
    """Give ``user`` another role (an editor's permission to send is kept only for editors).

    :raises Conflict: it would leave no active admin (field ``role``).
    """
    if user.role is Role.ADMIN and role is not Role.ADMIN and not _other_active_admins(user):
        raise Conflict("there must be at least one active admin", field="role")
    user.role = role
    if role is not Role.EDITOR:
        user.can_send = False
    db.session.commit()


def set_can_send(user: User, allowed: bool) -> None:
    """Allow an editor to send issues to lists, or stop them.

    :raises Conflict: the user is not an editor (admins always may, viewers never).
    """
    if user.role is not Role.EDITOR:
        raise Conflict(f"only editors need permission to send; {user.email} is "
                       f"{user.role.value}", field="can_send")
    user.can_send = allowed
    db.session.commit()


def set_active(user: User, active: bool) -> None:
    """Deactivate (every session and API token stops working) or reactivate ``user``.

    :raises Conflict: it would leave no active admin (field ``active``).
    """
    if not active and user.role is Role.ADMIN and not _other_active_admins(user):
        raise Conflict("there must be at least one active admin", field="active")
    user.active = active
    db.session.commit()
    if not active:
        sessions.revoke(user)
