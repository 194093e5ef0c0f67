"""analytics: tracking per issue, counters by the hour, the delivery timeline

- ``issues.tracking``: ``off`` (the default), ``aggregate`` or ``individual``.
- ``analytics_counts``: counts by issue, metric, link and hour (opens, clicks, filtered
  ones, unsubscribes); no row names a person.
- ``tracking_events``: one row per open or click, only for issues in ``individual`` mode.
- ``delivery_timeline``: an issue's sent and failed totals at the end of each minute.
- ``analytics_marks``: how far the bounce events are folded into the hourly counts.
- an index on ``bounce_events`` (issue, kind, time) for the events not folded in yet.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

MODES = ("off", "aggregate", "individual")
METRICS = (
    "open",
    "open_filtered",
    "open_unique",
    "click",
    "click_filtered",
    "click_unique",
    "unsubscribe",
    "hard_bounce",
    "soft_bounce",
    "complaint",
)
KINDS = ("open", "click")


def _enum(name: str, values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=20)


def upgrade() -> None:
    # Plain ADD COLUMN, as 0013 does for templates.kind: on SQLite the CHECK is skipped (a
    # batch copy would be needed for it, and the downgrade's copy would then trip over it).
    op.add_column(
        "issues",
        sa.Column("tracking", _enum("trackingmode", MODES), nullable=False, server_default="off"),
    )
    op.create_table(
        "analytics_counts",
        sa.Column(
            "issue_id",
            sa.Integer(),
            sa.ForeignKey("issues.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("metric", _enum("metric", METRICS), primary_key=True),
        sa.Column("link", sa.Integer(), primary_key=True),
        sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "tracking_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "issue_id", sa.Integer(), sa.ForeignKey("issues.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "delivery_id",
            sa.Integer(),
            sa.ForeignKey("deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", _enum("trackingkind", KINDS), nullable=False),
        sa.Column("link", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_tracking_events_delivery_id_kind", "tracking_events", ["delivery_id", "kind"]
    )
    op.create_index("ix_tracking_events_issue_id_kind", "tracking_events", ["issue_id", "kind"])
    op.create_table(
        "delivery_timeline",
        sa.Column(
            "issue_id",
            sa.Integer(),
            sa.ForeignKey("issues.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("minute", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
    )
    op.create_table(
        "analytics_marks",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("pending_id", sa.Integer(), nullable=False),
        sa.Column("pending_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_bounce_events_issue_id_kind_occurred_at",
        "bounce_events",
        ["issue_id", "kind", "occurred_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_bounce_events_issue_id_kind_occurred_at", "bounce_events")
    op.drop_table("analytics_marks")
    op.drop_table("delivery_timeline")
    op.drop_index("ix_tracking_events_issue_id_kind", "tracking_events")
    op.drop_index("ix_tracking_events_delivery_id_kind", "tracking_events")
    op.drop_table("tracking_events")
    op.drop_table("analytics_counts")
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("tracking")
