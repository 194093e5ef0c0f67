"""feeds: RSS and Atom feeds the workers poll, and the entries already seen

- ``feeds``: the feed's address and title, what its last answer said (``etag``,
  ``last_modified``, sent back for a conditional GET), when to poll next, how often, how many
  polls failed in a row and the last error (the backoff), and whether a new entry opens a
  draft issue and whether that issue is sent without an editor (off unless turned on).
- ``feed_lists``: the lists a feed's draft issues go to.
- ``feed_entries``: each entry seen, by its guid (unique per feed), with the statement it
  became and the issue it opened.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 11:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "feeds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("etag", sa.String(length=500), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("auto_open_draft", sa.Boolean(), nullable=False),
        sa.Column("auto_send", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feeds")),
        sa.UniqueConstraint("url", name=op.f("uq_feeds_url")),
    )
    op.create_index("ix_feeds_next_poll_at", "feeds", ["next_poll_at"], unique=False)
    op.create_table(
        "feed_lists",
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["feed_id"], ["feeds.id"], name=op.f("fk_feed_lists_feed_id_feeds"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_feed_lists_list_id_lists"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("feed_id", "list_id", name=op.f("pk_feed_lists")),
    )
    op.create_table(
        "feed_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.Integer(), nullable=False),
        sa.Column("guid", sa.String(length=500), nullable=False),
        sa.Column("statement_id", sa.Integer(), nullable=True),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["feed_id"], ["feeds.id"], name=op.f("fk_feed_entries_feed_id_feeds"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_feed_entries_issue_id_issues"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["statement_id"], ["statements.id"],
            name=op.f("fk_feed_entries_statement_id_statements"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_entries")),
        sa.UniqueConstraint("feed_id", "guid", name=op.f("uq_feed_entries_feed_id")),
    )


def downgrade():
    op.drop_table("feed_entries")
    op.drop_table("feed_lists")
    op.drop_index("ix_feeds_next_poll_at", table_name="feeds")
    op.drop_table("feeds")
