"""admin: dashboard accounts, failed sign-ins, order search indexes

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# bikshop.models.admin.phone_tail, spelled out per database (a migration never imports models).
_PHONE_TAIL = {"sqlite": "substr(phone_digits, -10)", "postgresql": "right(phone_digits, 10)"}
# bikshop.models.admin.AWAITING_PAYMENT and TO_SHIP: the summary tiles' partial indexes.
_AWAITING_PAYMENT = "payment_status = 'pending' AND status <> 'CANCELLED'"
_TO_SHIP = (
    "status IN ('ORDERED', 'IN PROGRESS') AND fulfillment_status IN ('unfulfilled', 'partial')"
)


def upgrade():
    op.create_table(
        "admin_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_users")),
        sa.UniqueConstraint("email", name=op.f("uq_admin_users_email")),
    )
    op.create_table(
        "admin_login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_login_failures")),
    )
    with op.batch_alter_table("admin_login_failures", schema=None) as batch_op:
        batch_op.create_index(
            "ix_admin_login_failures_address_created_at", ["address", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_admin_login_failures_email_created_at", ["email", "created_at"], unique=False
        )
    # Plain create_index (not batch): SQLite adds an index without rebuilding the table.
    op.create_index("ix_webhook_events_order_id", "webhook_events", ["order_id"])
    op.create_index("ix_orders_status_id", "orders", ["status", "id"])
    op.create_index("ix_orders_payment_status_id", "orders", ["payment_status", "id"])
    op.create_index("ix_orders_fulfillment_status_id", "orders", ["fulfillment_status", "id"])
    dialect = op.get_bind().dialect.name
    op.create_index("ix_orders_phone_tail", "orders", [sa.text(_PHONE_TAIL[dialect])])
    for name, column, where in (
        ("ix_orders_awaiting_payment", "total", _AWAITING_PAYMENT),
        ("ix_orders_to_ship", "id", _TO_SHIP),
    ):
        op.create_index(
            name,
            "orders",
            [column],
            sqlite_where=sa.text(where),
            postgresql_where=sa.text(where),
        )


def downgrade():
    op.drop_index("ix_orders_to_ship", table_name="orders")
    op.drop_index("ix_orders_awaiting_payment", table_name="orders")
    op.drop_index("ix_orders_phone_tail", table_name="orders")
    op.drop_index("ix_orders_fulfillment_status_id", table_name="orders")
    op.drop_index("ix_orders_payment_status_id", table_name="orders")
    op.drop_index("ix_orders_status_id", table_name="orders")
    op.drop_index("ix_webhook_events_order_id", table_name="webhook_events")
    op.drop_table("admin_login_failures")
    op.drop_table("admin_users")
