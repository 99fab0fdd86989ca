"""DirectStatement (bikshop/database.py): the same rows as ``Connection.execute``, and on any
driver error SQLAlchemy's own exception, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Integer, bindparam, select, text
from sqlalchemy.exc import IntegrityError

from bikshop.database import DirectStatement, autocommit_connection, read_connection
from bikshop.extensions import db
from bikshop.models import Order, OrderItem
from bikshop.services.orders import order_snapshot
from tests.bik import place, sample_body

ORDERS, ITEMS = Order.__table__, OrderItem.__table__


def _placed(client, count: int) -> list[str]:
    ids = []
    for n in range(count):
        answer = place(client, sample_body(f"direct_{n}"))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        ids.append(answer.get_json()["order"]["id"])
    return ids


def test_rows_and_their_python_types_are_what_connection_execute_gives(app, client):
    ids = _placed(client, 3)
    query = (
        select(ORDERS, ITEMS.c.price.label("item_price"), ITEMS.c.quantity)
        .select_from(ORDERS.join(ITEMS, ITEMS.c.order_id == ORDERS.c.id))
        .where((ORDERS.c.public_id == ids[0]) | (ORDERS.c.created_at > bindparam("since")))
        .where(ORDERS.c.public_id != bindparam("not_this"))
        .order_by(ORDERS.c.id, ITEMS.c.position)
    )
    # A literal (ids[0]), a typed parameter (a UTCDateTime) and a plain one.
    params = {"since": datetime(2000, 1, 1, tzinfo=UTC), "not_this": ids[2]}
    direct = DirectStatement(query)
    with app.app_context(), read_connection() as connection:
        expected = [tuple(row) for row in connection.execute(query, params)]
        for _ in range(2):  # the first run learns the driver's column types; the second uses them
            got = direct.rows(connection, params)
            assert got == expected
            assert [list(map(type, row)) for row in got] == [
                list(map(type, row)) for row in expected
            ]
    assert len(expected) >= 2
    row = dict(zip(query.selected_columns.keys(), expected[0], strict=True))
    # The conversions that matter: exact money, aware UTC times, JSON as a dict.
    assert isinstance(row["total"], Decimal) and isinstance(row["item_price"], Decimal)
    assert row["created_at"].tzinfo is not None and row["created_at"].utcoffset().seconds == 0
    assert isinstance(row["address"], dict)


def test_a_driver_error_is_raised_as_sqlalchemys(app, client):
    (order_id,) = _placed(client, 1)
    duplicate = DirectStatement(
        text("INSERT INTO counters (name, value) VALUES (:name, 1) RETURNING value").columns(
            value=Integer
        )
    )
    with app.app_context():
        with autocommit_connection() as connection:
            assert duplicate.rows(connection, {"name": "direct_test"}) == [(1,)]
            with pytest.raises(IntegrityError):  # not the driver's own IntegrityError class
                duplicate.rows(connection, {"name": "direct_test"})
        # The failed statement changed nothing, and the connection still works.
        with read_connection() as connection:
            count = connection.execute(
                text("SELECT count(*) FROM counters WHERE name = 'direct_test'")
            ).scalar_one()
        assert count == 1
        assert order_snapshot(order_id).public_id == order_id
        db.session.remove()


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        (select(ORDERS.c.id).where(ORDERS.c.public_id.in_(["a", "b"])), "expanding"),
        (text("DELETE FROM counters WHERE name = 'x'"), "return rows"),
    ],
)
def test_statements_it_cannot_run_as_compiled_are_refused(app, statement, reason):
    with (
        app.app_context(),
        read_connection() as connection,
        pytest.raises(ValueError, match=reason),
    ):
        DirectStatement(statement).rows(connection, {})
