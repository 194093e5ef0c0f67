"""delivery control: editors' timezone, the delivery log's index, progress samples

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    # Existing users get UTC: the times they typed so far were read as UTC. A plain ALTER,
    # not batch mode: rebuilding the table on SQLite would drop the expression index on email.
    op.add_column(
        'users', sa.Column('timezone', sa.String(length=64), server_default='UTC', nullable=False)
    )

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_subscriber_id', ['subscriber_id'], unique=False)

    op.create_table('progress_samples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issue_id', sa.Integer(), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('pending', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['issue_id'], ['issues.id'], name=op.f('fk_progress_samples_issue_id_issues'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_progress_samples'))
    )
    with op.batch_alter_table('progress_samples', schema=None) as batch_op:
        batch_op.create_index('ix_progress_samples_issue_id_taken_at', ['issue_id', 'taken_at'], unique=False)


def downgrade():
    with op.batch_alter_table('progress_samples', schema=None) as batch_op:
        batch_op.drop_index('ix_progress_samples_issue_id_taken_at')

    op.drop_table('progress_samples')
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_subscriber_id')

    op.drop_column('users', 'timezone')  # SQLite 3.35+ drops a column in place
