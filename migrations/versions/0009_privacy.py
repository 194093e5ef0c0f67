"""privacy: a blocklist of domains, erased addresses kept as keyed hashes, consent detail

- ``blocked_domains``: domains no address of which is added or mailed.
- ``erased_addresses``: HMAC-SHA256 of each address erased at the person's request, so that
  no import or API call brings it back.
- ``subscriptions.consent_detail`` / ``consent_page`` / ``consent_user_agent``: how consent
  was given (the API token's name, the import's file and label, the admin), on which page,
  and (when ``NEWSLETTER_CONSENT_IP`` allows) with which browser.
- ``deliveries.subscriber_id`` may be NULL: an erased person's rows stay, without them, so
  the issue's counts stay right.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 11:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _utc():
    return sa.DateTime(timezone=True)


def _set_delivery_subscriber_nullable(nullable):
    if op.get_bind().dialect.name == "sqlite":
        # SQLite changes NOT NULL only by rebuilding the table (deliveries: no expression
        # index to lose); nothing references deliveries, foreign keys off for the copy anyway.
        op.execute("PRAGMA foreign_keys=OFF")
        with op.batch_alter_table("deliveries", recreate="always") as batch:
            batch.alter_column("subscriber_id", existing_type=sa.Integer(), nullable=nullable)
        op.execute("PRAGMA foreign_keys=ON")
    else:
        op.alter_column(
            "deliveries", "subscriber_id", existing_type=sa.Integer(), nullable=nullable
        )


def upgrade():
    op.create_table(
        "blocked_domains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocked_domains")),
        sa.UniqueConstraint("domain", name=op.f("uq_blocked_domains_domain")),
    )
    op.create_table(
        "erased_addresses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("blocklisted", sa.Boolean(), nullable=False),
        sa.Column("erased_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erased_addresses")),
        sa.UniqueConstraint("address_hash", name=op.f("uq_erased_addresses_address_hash")),
    )
    op.add_column("subscriptions", sa.Column("consent_detail", sa.Text(), nullable=True))
    op.add_column(
        "subscriptions", sa.Column("consent_page", sa.String(length=500), nullable=True)
    )
    op.add_column(
        "subscriptions", sa.Column("consent_user_agent", sa.String(length=300), nullable=True)
    )
    _set_delivery_subscriber_nullable(True)


def downgrade():
    op.execute("DELETE FROM deliveries WHERE subscriber_id IS NULL")
    _set_delivery_subscriber_nullable(False)
    op.drop_column("subscriptions", "consent_user_agent")
    op.drop_column("subscriptions", "consent_page")
    op.drop_column("subscriptions", "consent_detail")
    op.drop_table("erased_addresses")
    op.drop_table("blocked_domains")
