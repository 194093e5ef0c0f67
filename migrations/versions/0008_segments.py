"""segments: saved subscriber filters, and issues that target them

- ``segments``: a name (unique), the query text in the segment language, who made it.
- ``issue_segments``: the segments an issue's audience is narrowed by (every one must match).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 11:40:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_segments_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("name", name=op.f("uq_segments_name")),
    )
    op.create_table(
        "issue_segments",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_issue_segments_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segments.id"], name=op.f("fk_issue_segments_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("issue_id", "segment_id", name=op.f("pk_issue_segments")),
    )
    op.create_index(
        op.f("ix_issue_segments_segment_id"), "issue_segments", ["segment_id"], unique=False
    )


def downgrade():
    op.drop_index(op.f("ix_issue_segments_segment_id"), table_name="issue_segments")
    op.drop_table("issue_segments")
    op.drop_table("segments")
