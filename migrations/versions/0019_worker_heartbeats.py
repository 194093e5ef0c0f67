"""worker heartbeats: a claimed delivery names its worker, whose heartbeat vouches for it

- ``workers``: one row per worker process, ``last_seen`` renewed every few seconds.
- ``deliveries.claimed_by`` (the worker) and ``deliveries.claim_token`` (drawn per claim),
  with no index, so that claiming and recording a row stay HOT updates on PostgreSQL (the
  hand-over reads the pending rows of the sends under way only when a worker is stale).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 14:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,  # ids never reused: a claim names one worker for ever
    )
    op.create_index("ix_workers_last_seen", "workers", ["last_seen"])
    op.add_column("deliveries", sa.Column("claimed_by", sa.Integer(), nullable=True))
    op.add_column("deliveries", sa.Column("claim_token", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("deliveries", "claim_token")
    op.drop_column("deliveries", "claimed_by")
    op.drop_index("ix_workers_last_seen", table_name="workers")
    op.drop_table("workers")
