"""admin: the order list a dashboard session last showed is kept with the session, on the server

It was kept in the session cookie, signed but readable, search text and all (often a customer's
phone, email or name). A cookie still holding it loses it at the next visit to the list.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("admin_sessions") as table:
        table.add_column(
            sa.Column("list_query", sa.String(length=1000), server_default="", nullable=False)
        )


def downgrade():
    with op.batch_alter_table("admin_sessions") as table:
        table.drop_column("list_query")
