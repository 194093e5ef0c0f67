"""counts at size: extended statistics for the lists page's counts

- ``st_subscriptions_list_id_status`` (PostgreSQL): how often each ``(list_id, status)``
  pair occurs, kept by ANALYZE and autovacuum. The lists page reads its large counts from
  it (``audience/list_counts.py``) instead of counting every subscription. SQLite does
  without (its databases are small and counted exactly).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 14:30:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE STATISTICS IF NOT EXISTS st_subscriptions_list_id_status (mcv) "
            "ON list_id, status FROM subscriptions"
        )
        op.execute("ANALYZE subscriptions")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_subscriptions_list_id_status")
