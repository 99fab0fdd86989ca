"""DirectStatement (bikshop/database.py): the same rows as ``Connection.execute``, the same
stored values from its writes, and on any driver error SQLAlchemy's own exception, on both
backends."""

from __future__ import annotations

import errno
import fcntl
import multiprocessing
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from sqlalchemy import Integer, bindparam, create_engine, select, text
from sqlalchemy.exc import IntegrityError

from bikshop import database
from bikshop.database import (
    DirectStatement,
    autocommit_connection,
    checkpoint_after_response,
    dispose_engines,
    read_connection,
    sqlite_writer,
)
from bikshop.extensions import db
from bikshop.models import Order, OrderEvent, OrderItem
from bikshop.services.orders import order_snapshot
from tests.bik import place, sample_body

ORDERS, ITEMS, EVENTS = Order.__table__, OrderItem.__table__, OrderEvent.__table__


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


def _event(order_id: int, kind: str) -> dict:
    """Every column of an order event but its id, with values that need conversion."""
    return {
        "order_id": order_id,
        "kind": kind,
        "actor": "direct-test",
        "message": "Ünïcode, 'quotes' and ₹",
        "data": {"amount": "499.50", "nested": [1, None, True]},
        "created_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    }


def _stored_events(connection, order_id: int) -> list[dict]:
    query = (
        select(*[c for c in EVENTS.c if c.key != "id"])
        .where(EVENTS.c.order_id == order_id, EVENTS.c.actor == "direct-test")
        .order_by(EVENTS.c.kind)
    )
    return [dict(row._mapping) for row in connection.execute(query)]


def test_writes_store_what_connection_execute_stores(app, client):
    (public_id,) = _placed(client, 1)
    with app.app_context():
        sqlite = db.engine.dialect.name == "sqlite"
        order_id = order_snapshot(public_id).id
        one = DirectStatement(EVENTS.insert(), keys=[c.key for c in EVENTS.c if c.key != "id"])
        with db.engine.begin() as connection:
            connection.execute(
                EVENTS.insert(), [_event(order_id, "a_core"), _event(order_id, "b_core")]
            )
            new_id = one.write(connection, _event(order_id, "c_direct"))
            one.write_many(connection, [_event(order_id, "d_direct"), _event(order_id, "e_direct")])
            one.write_many(connection, [])  # nothing to write is not an error
        with db.engine.connect() as connection:
            stored = _stored_events(connection, order_id)
            direct_id = connection.execute(
                select(EVENTS.c.id).where(EVENTS.c.kind == "c_direct")
            ).scalar_one()
        db.session.remove()
    assert [row["kind"] for row in stored] == [
        "a_core",
        "b_core",
        "c_direct",
        "d_direct",
        "e_direct",
    ]
    # Every column the same but the kind: the JSON, the aware time, the text.
    assert all(row | {"kind": None} == stored[0] | {"kind": None} for row in stored)
    values = stored[2]
    assert values["data"] == {"amount": "499.50", "nested": [1, None, True]}
    assert values["created_at"] - datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC) == timedelta(0)
    assert values["message"] == "Ünïcode, 'quotes' and ₹"
    if sqlite:
        assert new_id == direct_id  # SQLite's lastrowid is the new row's id


def test_write_returning_gives_the_rows_of_returning(app):
    statement = DirectStatement(
        text(
            "INSERT INTO counters (name, value) VALUES (:name, :value) "
            "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value"
        ).columns(value=Integer)
    )
    with app.app_context():
        with db.engine.begin() as connection:
            first = statement.write_returning(connection, {"name": "direct_returning", "value": 7})
            second = statement.write_returning(connection, {"name": "direct_returning", "value": 7})
        db.session.remove()
    assert (first, second) == ([(7,)], [(8,)])


def test_a_failed_write_raises_sqlalchemys_error_once_and_its_transaction_rolls_back(app):
    insert = DirectStatement(
        text("INSERT INTO counters (name, value) VALUES (:name, :value)"), keys=None
    )
    with app.app_context():
        sqlite = db.engine.dialect.name == "sqlite"
        with db.engine.begin() as connection:
            insert.write(connection, {"name": "direct_once", "value": 1})
        statements = []
        with pytest.raises(IntegrityError) as raised, db.engine.begin() as connection:
            driver = connection.connection.driver_connection
            if sqlite:  # the driver reports each statement it runs
                driver.set_trace_callback(statements.append)
            insert.write(connection, {"name": "direct_rolled_back", "value": 2})
            insert.write(connection, {"name": "direct_once", "value": 3})
        with db.engine.connect() as connection:
            names = connection.execute(
                text("SELECT name FROM counters WHERE name LIKE 'direct_%' ORDER BY name")
            ).scalars()
            names = list(names)
        if sqlite:
            driver.set_trace_callback(None)
        db.session.remove()
    assert "parameters hidden" in str(raised.value)  # as the engine's hide_parameters asks
    assert names == ["direct_once"]  # the whole transaction rolled back, the first row kept
    if sqlite:
        # Not run a second time after failing: a write may have waited for a lock.
        assert sum(s.startswith("INSERT INTO counters") for s in statements) == 2, statements


def test_a_write_without_every_column_is_refused(app):
    # created_at has a Python-side default, which a direct write cannot apply.
    keys = [c.key for c in EVENTS.c if c.key not in ("id", "created_at")]
    with (
        app.app_context(),
        db.engine.begin() as connection,
        pytest.raises(ValueError, match="created_at"),
    ):
        DirectStatement(EVENTS.insert(), keys=keys).write(connection, {})
    with app.app_context():
        db.session.remove()


def test_the_sqlite_writer_lock_is_skipped_where_its_file_cannot_be_made(tmp_path):
    """A lock file that cannot be created (here: its folder is gone) must not fail the write:
    SQLite's own locking still orders writers. In-memory databases and servers have none."""
    ran = []
    for url in (
        f"sqlite:///{tmp_path / 'gone' / 'shop.sqlite3'}",
        "sqlite://",
        "postgresql+psycopg://nobody@127.0.0.1:1/none",
    ):
        engine = create_engine(url)
        with sqlite_writer(engine):
            ran.append(url)
        engine.dispose()
    assert len(ran) == 3
    assert not (tmp_path / "gone").exists()
    made = tmp_path / "shop.sqlite3"
    engine = create_engine(f"sqlite:///{made}")
    with sqlite_writer(engine):
        assert (tmp_path / "shop.sqlite3-writer.lock").exists()
    engine.dispose()


def test_a_failed_checkpoint_is_logged_not_raised(tmp_path, caplog):
    """The answer is already sent when a checkpoint runs: a failure there is a warning."""
    engine = create_engine(f"sqlite:///{tmp_path / 'gone' / 'shop.sqlite3'}")
    with caplog.at_level("WARNING", logger="bikshop.database"):
        checkpoint_after_response(engine)  # outside a request: runs at once
    engine.dispose()
    assert "SQLite WAL checkpoint failed" in caplog.text


@pytest.mark.sqlite_only
def test_a_file_system_without_flock_still_writes(app, client, monkeypatch):
    """Where ``flock`` fails (ENOLCK on some network mounts; no such mount here, so the call is
    made to fail), placeOrder is written without the writer lock, not refused."""

    def no_locks(descriptor, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    response = place(client, sample_body())
    assert response.status_code == 200, response.get_json()
    with app.app_context():
        assert order_snapshot(response.get_json()["order"]["id"]) is not None


def _timed_place(app, draft: str) -> tuple[int, float]:
    started = time.monotonic()
    answer = place(app.test_client(), sample_body(draft))
    return answer.status_code, time.monotonic() - started


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_held_lock_on_the_order_counter_is_a_503_within_the_lock_wait(
    make_app, database_url, monkeypatch
):
    """A transaction left holding the counters table (an operator's LOCK TABLE, a stuck
    session): placeOrder gives up after LOCK_WAIT_SECONDS with a 503, once (the statement is
    not run a second time), instead of holding the worker until gunicorn kills it."""
    monkeypatch.setattr(database, "LOCK_WAIT_SECONDS", 1)
    app = make_app()
    with psycopg.connect(database_url) as locker:
        locker.execute("LOCK TABLE counters IN ACCESS EXCLUSIVE MODE")
        status, elapsed = _timed_place(app, "held_lock")
        locker.rollback()
    assert status == 503
    assert 0.9 <= elapsed < 1.9, elapsed  # one wait of about a second, not two
    assert _timed_place(app, "held_lock")[0] == 200  # Bik's retry, the lock gone: one order


@pytest.mark.sqlite_only
def test_sqlite_writers_queued_behind_another_programs_write_share_one_deadline(
    app, database_url, monkeypatch
):
    """Another program holds a write transaction open: each of three workers (processes)
    placing an order gets its 503 about LOCK_WAIT_SECONDS after it began. Before, each waited
    for the writer lock and then its own full busy timeout: the third took three times as
    long, past gunicorn's worker timeout."""
    monkeypatch.setattr(database, "LOCK_WAIT_SECONDS", 1)
    path = database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    _CHILD_DATABASE[:] = [database_url]
    context = multiprocessing.get_context("fork")
    with app.app_context():
        dispose_engines(close=False)  # each child opens its own connections, as after a fork
    with context.Pool(3) as pool:
        results = pool.starmap(_timed_place_in_child, [(f"queued_{n}",) for n in range(3)])
    holder.execute("ROLLBACK")
    holder.close()
    assert [status for status, _ in results] == [503, 503, 503]
    assert max(elapsed for _, elapsed in results) < 2.0, results


def _timed_place_in_child(draft: str) -> tuple[int, float]:
    from bikshop import create_app
    from tests.conftest import BASE_CONFIG

    url = _CHILD_DATABASE[0]
    return _timed_place(create_app({**BASE_CONFIG, "DATABASE_URL": url}), draft)


_CHILD_DATABASE: list[str] = []
