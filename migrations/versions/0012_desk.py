"""desk: writing and composing

- ``statements.previewed_at``: when an editor last saw the statement rendered; the compose
  page warns before sending one nobody has looked at.
- ``issues.sender_name``: the From display name of one issue; ``issues.hidden_at``: a sent
  issue put off the admin's list (it cannot be deleted).
- ``media``: the media library's images (in the instance folder or an S3 bucket).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 11:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("statements", sa.Column("previewed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "issues", sa.Column("sender_name", sa.String(length=200), nullable=False,
                  server_default=sa.text("''"))
    )
    op.add_column("issues", sa.Column("hidden_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column(
            "storage",
            sa.Enum("local", "s3", name="mediastorage", native_enum=False,
                    create_constraint=True, length=20),
            nullable=False,
        ),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["uploaded_by"], ["users.id"], name=op.f("fk_media_uploaded_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
        sa.UniqueConstraint("key", name=op.f("uq_media_key")),
    )


def downgrade():
    op.drop_table("media")
    op.drop_column("issues", "hidden_at")
    op.drop_column("issues", "sender_name")
    op.drop_column("statements", "previewed_at")
