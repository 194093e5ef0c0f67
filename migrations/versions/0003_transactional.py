"""transactional mail: one row per message sent through POST /api/v1/tx

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 11:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('transactional_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('queued', 'sent', 'failed', name='transactionalstatus', native_enum=False, create_constraint=True, length=20), nullable=False),
    sa.Column('to_address', sa.String(length=320), nullable=False),
    sa.Column('to_name', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=True),
    sa.Column('message', sa.LargeBinary(), nullable=True),
    sa.Column('message_id', sa.String(length=255), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_reply', sa.Text(), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['template_id'], ['templates.id'], name=op.f('fk_transactional_messages_template_id_templates'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transactional_messages'))
    )
    with op.batch_alter_table('transactional_messages', schema=None) as batch_op:
        batch_op.create_index('ix_transactional_messages_status', ['status'], unique=False)


def downgrade():
    with op.batch_alter_table('transactional_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_transactional_messages_status')

    op.drop_table('transactional_messages')
