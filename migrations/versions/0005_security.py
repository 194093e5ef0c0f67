"""security: a viewer role, sessions that end, scoped tokens, two factors, an audit log,
link-token versions and a confirmation cool-down

- ``users.role`` also takes ``viewer``; ``users.can_send`` lets an admin allow an editor to
  send to lists; ``users.session_version`` is copied into each login session and bumped at
  logout, password change and deactivation, so a copied cookie stops working;
  ``users.totp_secret``/``totp_enabled_at`` hold the second factor, ``recovery_codes`` its
  one-time codes (hashed).
- ``api_tokens`` get a ``name``, ``scopes`` (tokens made before keep every scope), an optional
  ``expires_at`` and ``revoked_at``.
- ``subscribers.token_version`` is signed into every manage and unsubscribe link, so one
  person's links can be revoked; ``subscribers.confirmation_sent_at`` holds when the last
  confirmation mail went out, for the cool-down that keeps sign-ups from flooding an address.
- ``audit_events``: who changed what, when (and from where, when the IP setting allows).
- ``site_settings``: settings an admin changes in the admin pages (e.g. "require 2FA").

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 08:40:00

"""
import warnings

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ROLES_BEFORE = ("admin", "editor")
ROLES_AFTER = ("admin", "editor", "viewer")


def _role(values):
    return sa.Enum(*values, name="role", native_enum=False, create_constraint=True, length=20)


def _set_roles(values):
    """Replace the CHECK constraint on ``users.role``.

    SQLite can only rebuild the table; with foreign keys on, dropping the old one would
    cascade into ``api_tokens``, so they are off for the rebuild. The rebuild loses the
    expression index on lower(email), which is made again.
    """
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA foreign_keys=OFF")
        with warnings.catch_warnings():
            # the index it cannot reflect is the one made again below
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression")
            with op.batch_alter_table("users", recreate="always") as batch:
                batch.alter_column(
                    "role",
                    existing_type=_role(ROLES_AFTER if values == ROLES_BEFORE else ROLES_BEFORE),
                    type_=_role(values),
                    existing_nullable=False,
                )
        op.execute("CREATE UNIQUE INDEX IF NOT EXISTS uq_users_email_lower ON users (lower(email))")
        op.execute("PRAGMA foreign_keys=ON")
        return
    op.drop_constraint(op.f("ck_users_role"), "users", type_="check")
    listed = ", ".join(f"'{value}'" for value in values)
    op.create_check_constraint(op.f("ck_users_role"), "users", sa.text(f"role IN ({listed})"))


# Plain ADD/DROP COLUMN where it suffices: SQLite (3.35+) does both in place, and a rebuild
# of these tables would drop their expression indexes (lower(email)).
def upgrade():
    _set_roles(ROLES_AFTER)
    op.add_column(
        "users", sa.Column("session_version", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "users", sa.Column("can_send", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("users", sa.Column("totp_secret", sa.String(length=64), nullable=True))
    op.add_column("users", sa.Column("totp_enabled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "users", sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=255), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_recovery_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
    )
    op.create_index(op.f("ix_recovery_codes_user_id"), "recovery_codes", ["user_id"])
    op.add_column(
        "api_tokens",
        sa.Column("name", sa.String(length=100), nullable=False, server_default=sa.text("''")),
    )
    op.add_column(
        "api_tokens",
        sa.Column("scopes", sa.String(length=100), nullable=False, server_default="read write send"),
    )
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_tokens", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "subscribers",
        sa.Column("token_version", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "subscribers", sa.Column("confirmation_sent_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_audit_events_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_created_at"), "audit_events", ["created_at"])
    op.create_index(op.f("ix_audit_events_action"), "audit_events", ["action"])
    op.create_table(
        "site_settings",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_site_settings")),
    )


def downgrade():
    op.drop_table("site_settings")
    op.drop_index(op.f("ix_audit_events_action"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_created_at"), table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_column("subscribers", "confirmation_sent_at")
    op.drop_column("subscribers", "token_version")
    op.drop_column("api_tokens", "revoked_at")
    op.drop_column("api_tokens", "expires_at")
    op.drop_column("api_tokens", "scopes")
    op.drop_column("api_tokens", "name")
    op.drop_index(op.f("ix_recovery_codes_user_id"), table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_column("users", "password_changed_at")
    op.drop_column("users", "totp_enabled_at")
    op.drop_column("users", "totp_secret")
    op.drop_column("users", "can_send")
    op.drop_column("users", "session_version")
    op.execute("DELETE FROM users WHERE role = 'viewer'")
    _set_roles(ROLES_BEFORE)
