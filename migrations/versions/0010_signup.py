"""signup: a daily cap on confirmation mail, the subscriber's language, welcome mail per list

- ``subscribers.confirmations_day`` / ``confirmations_that_day``: how many confirmation
  mails went to the address on that UTC day (at most ``CONFIRMATIONS_PER_DAY``).
- ``subscribers.language``: the language of the pages and mail the person gets ("en", "es").
- ``lists.welcome_enabled`` / ``welcome_subject`` / ``welcome_text``: a welcome mail on
  confirmation, with the list's own subject and intro text.

Plain ``add_column`` only: on SQLite a batch rebuild of ``subscribers`` would drop its
``lower(email)`` expression index.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 11:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("subscribers", sa.Column("confirmations_day", sa.Date(), nullable=True))
    op.add_column(
        "subscribers",
        sa.Column("confirmations_that_day", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("subscribers", sa.Column("language", sa.String(length=16), nullable=True))
    op.add_column(
        "lists",
        sa.Column("welcome_enabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "lists",
        sa.Column(
            "welcome_subject", sa.String(length=200), nullable=False, server_default=sa.text("''")
        ),
    )
    op.add_column(
        "lists", sa.Column("welcome_text", sa.Text(), nullable=False, server_default=sa.text("''"))
    )


def downgrade():
    # SQLite 3.35+ drops a plain column in place (no table rebuild).
    for column in ("welcome_text", "welcome_subject", "welcome_enabled"):
        op.drop_column("lists", column)
    for column in ("language", "confirmations_that_day", "confirmations_day"):
        op.drop_column("subscribers", column)
