"""security: session versions for users, link-token versions and a confirmation cool-down for
subscribers

``users.session_version`` is copied into each login session and bumped at logout, password
change and deactivation, so a copied cookie stops working. ``subscribers.token_version`` is
signed into every manage and unsubscribe link, so one person's links can be revoked.
``subscribers.confirmation_sent_at`` holds when the last confirmation mail went out, for the
cool-down that keeps sign-ups from flooding an address.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 08:40:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# Plain ADD/DROP COLUMN, not batch mode: SQLite (3.35+) does both in place, and a batch
# rebuild of these tables would drop their expression indexes (lower(email)).
def upgrade():
    op.add_column(
        "users", sa.Column("session_version", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "subscribers",
        sa.Column("token_version", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "subscribers", sa.Column("confirmation_sent_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade():
    op.drop_column("subscribers", "confirmation_sent_at")
    op.drop_column("subscribers", "token_version")
    op.drop_column("users", "session_version")
