"""orders: drop ix_orders_phone_digits, which no query uses

Phone search goes through ix_orders_phone_tail (the number's last ten digits, 0003); the plain
index on phone_digits only cost every placeOrder one more index page to write.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    # Plain drop_index (not batch): neither database rebuilds the table for it.
    op.drop_index("ix_orders_phone_digits", table_name="orders")


def downgrade():
    op.create_index("ix_orders_phone_digits", "orders", ["phone_digits"])
