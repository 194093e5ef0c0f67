"""Users of the admin pages and their API tokens."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, Index, String, false, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.extensions import db
from newsletter.models import UTCDateTime, enum_column, utcnow


class Role(enum.Enum):
    ADMIN = "admin"  # everything
    EDITOR = "editor"  # statements, templates, issues, test sends; lists only with can_send
    VIEWER = "viewer"  # reads, changes nothing


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id
    role: Mapped[Role] = mapped_column(enum_column(Role), default=Role.EDITOR)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # IANA name: scheduled send times are typed and shown in it.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    #: copied into each login session; bumped at logout, password change and deactivation
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    #: an editor may send issues to lists only when an admin allows it
    can_send: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: base32 TOTP secret once enrolment started; the factor is on from ``totp_enabled_at``
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    recovery_codes: Mapped[list[RecoveryCode]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    @property
    def is_active(self) -> bool:
        return self.active

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role.value}>"


# One row per address, whatever its case (an expression index; Alembic cannot see it).
Index("uq_users_email_lower", func.lower(User.email), unique=True)


class ApiToken(db.Model):  # type: ignore[name-defined]
    """A bearer token; only its SHA-256 is kept (it is random, so a slow hash adds nothing)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # shown in the UI to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    name: Mapped[str] = mapped_column(String(100), default="", server_default=text("''"))
    #: space-separated of "read", "write", "send"; tokens made before scopes existed have all
    scopes: Mapped[str] = mapped_column(
        String(100), default="read write send", server_default="read write send"
    )
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(back_populates="tokens")

    def __repr__(self) -> str:
        return f"<ApiToken {self.prefix}… of user {self.user_id}>"


class RecoveryCode(db.Model):  # type: ignore[name-defined]
    """A one-time code that stands in for the second factor; only its argon2 hash is kept."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(back_populates="recovery_codes")


class AuditEvent(db.Model):  # type: ignore[name-defined]
    """One change made through the admin pages or the API: who, what, when, from where."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: the user's address at the time (kept when the user is deleted), or "cli"/"system"
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: only when ``STORE_IP`` allows it
    ip: Mapped[str | None] = mapped_column(String(45))


class SiteSetting(db.Model):  # type: ignore[name-defined]
    """A setting an admin changes in the admin pages (e.g. requiring two factors)."""

    __tablename__ = "site_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)

    def __repr__(self) -> str:
        return f"<SiteSetting {self.key}>"
