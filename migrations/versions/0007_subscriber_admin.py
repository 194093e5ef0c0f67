"""subscriber admin: archived lists, indexes for searching and filtering subscribers

- ``lists.archived_at``: an archived list leaves the signup form and the compose pickers.
- ``ix_subscribers_status_id``: filter by subscriber status in id order (keyset pages).
- On PostgreSQL, ``lower(email)`` and ``lower(name)`` with ``text_pattern_ops``, so that a
  search by the start of an address or name (``LIKE 'ada%'``) uses an index whatever the
  database's collation. SQLite does without.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 11:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("lists", sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_subscribers_status_id", "subscribers", ["status", "id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_subscribers_email_pattern ON subscribers "
            "(lower(email) text_pattern_ops)"
        )
        op.execute(
            "CREATE INDEX ix_subscribers_name_pattern ON subscribers "
            "(lower(name) text_pattern_ops)"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_subscribers_name_pattern", table_name="subscribers")
        op.drop_index("ix_subscribers_email_pattern", table_name="subscribers")
    op.drop_index("ix_subscribers_status_id", table_name="subscribers")
    op.drop_column("lists", "archived_at")
