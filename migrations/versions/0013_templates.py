"""templates and the archive: a kind per template, permalinks, kept-out issues

- ``templates.kind``: ``issue`` (every template so far) or ``transactional``. The built-in
  issue template, called "Default" until now, is called "digest" (one of three built-ins:
  statement, digest, letter; the built-in "transactional" template is made on first use).
- ``issues.slug``: the archive permalink, made from the subject when sending starts and never
  changed; issues sent before this revision get one here.
- ``issues.kept_out``: an editor keeps an issue out of the archive.
- ``issues.send_error``: why the last send stopped before anyone got mail.

Plain ADD COLUMN statements: no table is rebuilt.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 11:20:00

"""
import re
import unicodedata

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _slugify(text):
    """The same rule as ``newsletter.content.archive.slugify`` (frozen here)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:80].rstrip("-") or "issue"


def upgrade():
    op.add_column(
        "templates",
        sa.Column(
            "kind",
            sa.Enum("issue", "transactional", name="templatekind", native_enum=False,
                    create_constraint=True, length=20),
            server_default="issue",
            nullable=False,
        ),
    )
    op.add_column("issues", sa.Column("slug", sa.String(length=200), nullable=True))
    op.add_column(
        "issues", sa.Column("kept_out", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("issues", sa.Column("send_error", sa.Text(), nullable=True))
    op.create_index("ix_issues_slug", "issues", ["slug"], unique=True)

    bind = op.get_bind()
    taken = {row[0] for row in bind.execute(sa.text("SELECT name FROM templates"))}
    if "digest" not in taken:
        bind.execute(sa.text(
            "UPDATE templates SET name = 'digest' WHERE name = 'Default' AND builtin = :yes"
        ), {"yes": True})
    # Issues that went out before permalinks existed get one now, oldest first.
    used = set()
    rows = bind.execute(sa.text(
        "SELECT id, subject FROM issues WHERE status IN ('sent', 'sending', 'paused', "
        "'cancelled') ORDER BY id"
    )).all()
    for issue_id, subject in rows:
        base = _slugify(subject or "")
        slug, number = base, 2
        while slug in used:
            slug, number = f"{base}-{number}", number + 1
        used.add(slug)
        bind.execute(sa.text("UPDATE issues SET slug = :slug WHERE id = :id"),
                     {"slug": slug, "id": issue_id})


def downgrade():
    op.drop_index("ix_issues_slug", table_name="issues")
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("send_error")
        batch.drop_column("kept_out")
        batch.drop_column("slug")
    with op.batch_alter_table("templates") as batch:
        batch.drop_column("kind")
    op.execute("UPDATE templates SET name = 'Default' WHERE name = 'digest' AND builtin")
