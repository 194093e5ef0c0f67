"""webhooks: the endpoints, the outbox of messages and the log of each delivery attempt

- ``webhook_endpoints``: a URL, its secret (and the previous one during a rotation), the
  event kinds it receives, whether it is on.
- ``webhook_messages``: one event for one endpoint, the exact body, where its delivery
  stands (attempts, next attempt, lease).
- ``webhook_attempts``: each POST: when, the status code, the error, how long it took.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 14:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

STATUSES = ("pending", "delivered", "failed")


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("previous_secret", sa.String(100), nullable=True),
        sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "webhook_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "endpoint_id",
            sa.Integer(),
            sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column(
            "subscriber_id",
            sa.Integer(),
            sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column(
            "status",
            sa.Enum(
                *STATUSES,
                name="messagestatus",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("manual_retry", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_webhook_messages_endpoint_id_id", "webhook_messages", ["endpoint_id", "id"])
    op.create_index(
        "ix_webhook_messages_status_next_attempt_at",
        "webhook_messages",
        ["status", "next_attempt_at"],
    )
    op.create_index("ix_webhook_messages_created_at", "webhook_messages", ["created_at"])
    op.create_index("ix_webhook_messages_subscriber_id", "webhook_messages", ["subscriber_id"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "message_id",
            sa.Integer(),
            sa.ForeignKey("webhook_messages.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
    )
    op.create_index("ix_webhook_attempts_message_id", "webhook_attempts", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_attempts_message_id", "webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index("ix_webhook_messages_subscriber_id", "webhook_messages")
    op.drop_index("ix_webhook_messages_created_at", "webhook_messages")
    op.drop_index("ix_webhook_messages_status_next_attempt_at", "webhook_messages")
    op.drop_index("ix_webhook_messages_endpoint_id_id", "webhook_messages")
    op.drop_table("webhook_messages")
    op.drop_table("webhook_endpoints")
