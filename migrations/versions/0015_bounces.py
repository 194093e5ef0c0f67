"""bounces: the events kept per address, unread reports, and the soft-bounce score

- ``bounce_events``: one row per bounce or complaint (time, kind, source, issue, reason).
- ``unread_bounces``: messages to the bounce address the classifier could not read.
- ``subscribers.bounce_score`` and ``bounce_score_day``: Mailman's soft-bounce score.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 14:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

KINDS = ("hard", "soft", "complaint")
SOURCES = ("smtp", "import", "lmtp", "mailbox", "api", "ses", "postmark", "sendgrid",
           "mailgun", "admin")


def _enum(name: str, values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=20)


def upgrade() -> None:
    op.create_table(
        "bounce_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subscriber_id", sa.Integer(),
                  sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("issue_id", sa.Integer(), sa.ForeignKey("issues.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("delivery_id", sa.Integer(),
                  sa.ForeignKey("deliveries.id", ondelete="SET NULL"), nullable=True),
        sa.Column("kind", _enum("bouncekind", KINDS), nullable=False),
        sa.Column("source", _enum("bouncesource", SOURCES), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_bounce_events_subscriber_id_occurred_at", "bounce_events",
                    ["subscriber_id", "occurred_at"])
    op.create_index("ix_bounce_events_issue_id_kind", "bounce_events", ["issue_id", "kind"])
    op.create_table(
        "unread_bounces",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", _enum("bouncesource", SOURCES), nullable=False),
        sa.Column("subject", sa.String(998), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("subscribers", sa.Column("bounce_score", sa.Integer(), nullable=False,
                                           server_default="0"))
    op.add_column("subscribers", sa.Column("bounce_score_day", sa.Date(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy of the table would lose its
    # expression indexes.
    op.drop_column("subscribers", "bounce_score_day")
    op.drop_column("subscribers", "bounce_score")
    op.drop_table("unread_bounces")
    op.drop_index("ix_bounce_events_issue_id_kind", "bounce_events")
    op.drop_index("ix_bounce_events_subscriber_id_occurred_at", "bounce_events")
    op.drop_table("bounce_events")
