"""deliveries: the claim's index covers the id range (issue_id, status, id)

A batch claims the pending rows of one issue inside an id range. With (issue_id, status)
alone PostgreSQL could only narrow to every pending row of the issue and then filter the
range, which on a freshly written audience of a million (statistics not yet gathered) it
sometimes planned as a scan of all of them per claim. With id last, each claim reads just
its range; queries on (issue_id, status) use the same index as before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 23:20:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_deliveries_issue_id_status_id", "deliveries", ["issue_id", "status", "id"], unique=False
    )
    op.drop_index("ix_deliveries_issue_id_status", table_name="deliveries")


def downgrade():
    op.create_index(
        "ix_deliveries_issue_id_status", "deliveries", ["issue_id", "status"], unique=False
    )
    op.drop_index("ix_deliveries_issue_id_status_id", table_name="deliveries")
