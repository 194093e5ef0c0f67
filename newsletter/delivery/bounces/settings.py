"""The bounce policy's settings an admin may change: the soft-bounce threshold and the days
after which a soft bounce is stale.

Defaults come from the configuration (``BOUNCE_SCORE_THRESHOLD``, ``BOUNCE_STALE_DAYS``);
a row in ``bounce_settings`` (at most one), written from the admin's Bounces page, wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.errors import ValidationError
from newsletter.extensions import db
from newsletter.models import UTCDateTime, utcnow

THRESHOLD_RANGE = (1, 100)
STALE_RANGE = (1, 365)


class BounceSettings(db.Model):  # type: ignore[name-defined]
    """The admin's choice of the soft-bounce policy (one row)."""

    __tablename__ = "bounce_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    score_threshold: Mapped[int] = mapped_column()
    stale_days: Mapped[int] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")

    def __repr__(self) -> str:
        return f"<BounceSettings threshold={self.score_threshold} stale={self.stale_days}d>"


@dataclass(frozen=True)
class Policy:
    """The soft-bounce policy in force."""

    #: a score at or above this stops mail to the address
    score_threshold: int
    #: a soft bounce older than this many days no longer counts (the score starts again)
    stale_days: int


def current() -> Policy:
    """The policy in force: the admin's row, or else the configured defaults."""
    row = db.session.scalar(select(BounceSettings).order_by(BounceSettings.id).limit(1))
    if row is not None:
        return Policy(row.score_threshold, row.stale_days)
    config = current_app.config
    return Policy(int(config["BOUNCE_SCORE_THRESHOLD"]), int(config["BOUNCE_STALE_DAYS"]))


def save(score_threshold: int, stale_days: int, *, by: str = "") -> Policy:
    """Set the policy (committed).

    :raises ValidationError: a value out of range, ``field`` naming it.
    """
    for name, value, (low, high) in (
        ("score_threshold", score_threshold, THRESHOLD_RANGE),
        ("stale_days", stale_days, STALE_RANGE),
    ):
        if not low <= value <= high:
            raise ValidationError(f"choose a number from {low} to {high}", field=name)
    row = db.session.scalar(select(BounceSettings).order_by(BounceSettings.id).limit(1))
    if row is None:
        row = BounceSettings()
        db.session.add(row)
    row.score_threshold = score_threshold
    row.stale_days = stale_days
    row.updated_by = by
    db.session.commit()
    return Policy(score_threshold, stale_days)
