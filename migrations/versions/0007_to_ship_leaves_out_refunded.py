"""dashboard: "To ship" leaves out orders refunded in full (the customer has its money back)

The partial index behind the tile is made again with the new condition. Nothing is deleted;
a downgrade makes it as it was.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# As bikshop/models/admin.py spells them at this revision (a migration never imports models).
_BEFORE = (
    "status IN ('ORDERED', 'IN PROGRESS') AND fulfillment_status IN ('unfulfilled', 'partial')"
)
_AFTER = _BEFORE + " AND payment_status <> 'refunded'"


def _make(where: str) -> None:
    op.drop_index("ix_orders_to_ship", table_name="orders")
    op.create_index(
        "ix_orders_to_ship",
        "orders",
        ["id"],
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def upgrade():
    _make(_AFTER)


def downgrade():
    _make(_BEFORE)
