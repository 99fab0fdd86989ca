"""How bikshop talks to its database beyond the ORM session: pool settings, the idle ping, and
single-statement reads without a transaction.

On PostgreSQL every round trip costs a context switch on each side (about 0.13 ms on the
benchmark machine), and the Bik endpoints are made of a few statements each, so round trips are
most of their cost. Two of them are pure overhead and are removed here:

* ``pool_pre_ping`` pings on *every* checkout. :func:`install_idle_ping` pings only a connection
  that sat unused for ``BIKSHOP_DATABASE_PING_AFTER_IDLE`` seconds (10; 0 pings every time),
  which is when a restarted or failed-over server, or a proxy that drops idle connections,
  leaves it dead. A connection that dies while in use still fails its statement; SQLAlchemy then
  discards the whole pool and the request gets a 503 with ``Retry-After``
  (tests/test_database_pool.py, tests/test_faults_database.py).
* A single statement needs no ``BEGIN``/``COMMIT`` pair: :func:`read_connection` runs it
  in autocommit, where the statement is its own transaction (one snapshot, all or nothing).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from bikshop.extensions import db

_IDLE_SINCE = "bikshop_idle_since"


def engine_options(database_uri: str) -> dict:
    """SQLALCHEMY_ENGINE_OPTIONS for ``database_uri``."""
    if database_uri.startswith("sqlite"):
        # Writers from several gunicorn workers wait for the lock instead of failing at once.
        return {"connect_args": {"timeout": 15}, "hide_parameters": True}
    # A sync worker serves one request at a time: a small pool per worker keeps several
    # workers (and instances) well under PostgreSQL's connection limit.
    # hide_parameters: driver errors reach the logs without customers' phone numbers.
    return {
        "hide_parameters": True,
        "pool_size": 2,
        "max_overflow": 3,
        "pool_timeout": 10,
        "connect_args": {"connect_timeout": 5},
    }


def install_idle_ping(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection at checkout if it has been idle for ``idle_seconds``; a dead one
    is replaced before the request uses it (SQLAlchemy retries the checkout on
    ``DisconnectionError``)."""
    if engine.dialect.name == "sqlite":
        return  # a file, not a server: nothing to lose between requests

    @event.listens_for(engine, "checkin")
    def _note_idle(dbapi_connection, record) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, proxy) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return  # new, or used moments ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the driver's own error for a dead socket
            raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error
        if not alive:
            raise exc.DisconnectionError("pooled connection failed its ping")


@contextmanager
def autocommit_connection() -> Iterator[Connection]:
    """A connection whose every statement is its own transaction."""
    with db.engine.connect() as connection:
        yield connection.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def read_connection() -> Iterator[Connection]:
    """A connection for one read statement, without a BEGIN/ROLLBACK round trip: autocommit on
    a server; as it comes on SQLite, where the driver begins no transaction for a SELECT (and
    switching to autocommit and back would cost a PRAGMA)."""
    if db.engine.dialect.name == "sqlite":
        with db.engine.connect() as connection:
            yield connection
    else:
        with autocommit_connection() as connection:
            yield connection
