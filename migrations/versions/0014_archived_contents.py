"""archived contents: what a sent issue's archive page shows, kept when sending starts

- ``issues.archived_contents``: the intro and statements (Markdown) as they were sent, so
  that editing or deleting a statement later never changes a sent issue's page. Issues
  sent before this revision keep showing their statements as they are.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("issues", sa.Column("archived_contents", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("archived_contents")
