"""repair: what revisions 0002 and 0003 gained after the first databases were made with them

0002 and 0003 were edited after the first release (2026-11-21): a database made then is stamped
0003 but lacks payment_links.razorpay_order_id and amount_paid, webhook_events.received_event_id,
the admin_login_failures table and the dashboard's indexes, so `db upgrade` passed while
dashboard sign-in and Pay failed. This adds whatever of them is missing, and nothing on a
database that has it all (every database made since). It has nothing to undo.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# As 0003 spells them (a migration never imports models).
_PHONE_TAIL = {"sqlite": "substr(phone_digits, -10)", "postgresql": "right(phone_digits, 10)"}
_AWAITING_PAYMENT = "payment_status = 'pending' AND status <> 'CANCELLED'"
_TO_SHIP = (
    "status IN ('ORDERED', 'IN PROGRESS') AND fulfillment_status IN ('unfulfilled', 'partial')"
)


def upgrade():
    bind = op.get_bind()
    dialect = bind.dialect.name
    inspector = sa.inspect(bind)

    def columns(table):
        return {column["name"] for column in inspector.get_columns(table)}

    if dialect == "sqlite":
        found = bind.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'index'"))
    else:
        found = bind.execute(sa.text("SELECT indexname FROM pg_indexes"))
    indexes = {name for (name,) in found}

    links = columns("payment_links")
    if "razorpay_order_id" not in links:
        op.add_column("payment_links", sa.Column("razorpay_order_id", sa.String(64)))
    if "ix_payment_links_razorpay_order_id" not in indexes:
        op.create_index(
            "ix_payment_links_razorpay_order_id", "payment_links", ["razorpay_order_id"]
        )
    if "amount_paid" not in links:
        # What a link took was its amount, when paid; nothing otherwise.
        op.add_column(
            "payment_links",
            sa.Column("amount_paid", sa.Numeric(12, 2), nullable=False, server_default="0"),
        )
        op.execute("UPDATE payment_links SET amount_paid = amount WHERE status = 'paid'")
        if dialect == "postgresql":
            op.alter_column("payment_links", "amount_paid", server_default=None)
    if "received_event_id" not in columns("webhook_events"):
        op.add_column("webhook_events", sa.Column("received_event_id", sa.String(64)))

    if "admin_login_failures" not in inspector.get_table_names():
        op.create_table(
            "admin_login_failures",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("email", sa.String(length=320), nullable=False),
            sa.Column("address", sa.String(length=64), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_login_failures")),
        )
    wanted = [
        ("ix_admin_login_failures_address_created_at", "admin_login_failures",
         ["address", "created_at"], None),
        ("ix_admin_login_failures_email_created_at", "admin_login_failures",
         ["email", "created_at"], None),
        ("ix_webhook_events_order_id", "webhook_events", ["order_id"], None),
        ("ix_orders_status_id", "orders", ["status", "id"], None),
        ("ix_orders_payment_status_id", "orders", ["payment_status", "id"], None),
        ("ix_orders_fulfillment_status_id", "orders", ["fulfillment_status", "id"], None),
        ("ix_orders_phone_tail", "orders", [sa.text(_PHONE_TAIL[dialect])], None),
        ("ix_orders_awaiting_payment", "orders", ["total"], _AWAITING_PAYMENT),
        ("ix_orders_to_ship", "orders", ["id"], _TO_SHIP),
    ]  # fmt: skip
    for name, table, keys, where in wanted:
        if name in indexes:
            continue
        partial = {}
        if where:
            partial = {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)}
        op.create_index(name, table, keys, **partial)


def downgrade():
    pass  # a repair: what it added is what 0002 and 0003 define, and their downgrades drop it
