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
  Those connections come from a second, small pool that stays in autocommit
  (:func:`engine_binds`): switching a connection of the main pool in and out of autocommit
  costs about 45 µs of client time per statement.

And for the two statements Bik's calls are made of, :class:`DirectStatement` skips SQLAlchemy's
per-execution work (cache key, execution context, result metadata: 40 to 90 µs a call) while
keeping its SQL, its types and, on any error, its error handling.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

from flask import after_this_request, has_request_context
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.sql import Executable

from bikshop.extensions import db

log = logging.getLogger(__name__)

_IDLE_SINCE = "bikshop_idle_since"


# How long a write waits for another's lock before the request gets a 503 (SQLite's busy
# timeout, PostgreSQL's lock_timeout): well inside gunicorn's 30 s worker timeout.
LOCK_WAIT_SECONDS = 15


def engine_options(database_uri: str) -> dict:
    """SQLALCHEMY_ENGINE_OPTIONS for ``database_uri``."""
    if database_uri.startswith("sqlite"):
        # Writers from several gunicorn workers wait for the lock instead of failing at once.
        return {"connect_args": {"timeout": LOCK_WAIT_SECONDS}, "hide_parameters": True}
    # A sync worker serves one request at a time: a small pool per worker keeps several
    # workers (and instances) well under PostgreSQL's connection limit.
    # hide_parameters: driver errors reach the logs without customers' phone numbers.
    # lock_timeout: a statement waiting for a lock (the order counter held by a stuck
    # transaction, a table an operator locked) gives up after LOCK_WAIT_SECONDS with a 503,
    # well inside gunicorn's worker timeout, instead of holding the worker until it is killed.
    return {
        "hide_parameters": True,
        "pool_size": 2,
        "max_overflow": 3,
        "pool_timeout": 10,
        "connect_args": {
            "connect_timeout": 5,
            "options": f"-c lock_timeout={LOCK_WAIT_SECONDS * 1000}",
        },
    }


AUTOCOMMIT = "autocommit"  # the Flask-SQLAlchemy bind key of the autocommit pool


def engine_binds(database_uri: str) -> dict:
    """SQLALCHEMY_BINDS: on a server, a pool of connections that stay in autocommit, for the
    single statements of Bik's calls; one connection per worker in use (a sync worker runs one
    statement at a time), two more on demand. SQLite needs none: its reads run as they come."""
    if database_uri.startswith("sqlite"):
        return {}
    options = engine_options(database_uri) | {"pool_size": 1, "max_overflow": 2}
    # Nothing to roll back on return: every statement has committed or failed whole.
    options |= {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}
    return {AUTOCOMMIT: {"url": database_uri, **options}}


def dispose_engines(*, close: bool = True) -> None:
    """Drop the current app's pooled connections, of every engine (``close=False`` after a
    fork: the parent's connections are left to the parent)."""
    for engine in db.engines.values():
        engine.dispose(close=close)


_SQLITE_READONLY = 8  # the primary result code; extended codes (READONLY_DBMOVED ...) keep it


def read_only_error(driver_error: BaseException | None) -> bool:
    """Whether the driver's error is the database refusing a write as read-only: PostgreSQL's
    SQLSTATE 25006 (``default_transaction_read_only``, a hot standby), which the driver files
    under InternalError, not OperationalError; or SQLite's SQLITE_READONLY (a connection opened
    while its file could not be written stays read-only for its life)."""
    if getattr(driver_error, "sqlstate", None) == "25006":
        return True
    code = getattr(driver_error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == _SQLITE_READONLY


# PostgreSQL's and SQLite's words for a table that is not there.
_MISSING_TABLE = re.compile(
    r'relation "(?:[^"]+\.)?([^".]+)" does not exist|^no such table: (?:\w+\.)?(\w+)'
)


def missing_table_error(driver_error: BaseException | None) -> bool:
    """Whether the driver's error is one of bikshop's own tables not being there: a database
    not migrated yet. PostgreSQL's SQLSTATE 42P01 (filed under ProgrammingError), SQLite's
    ``no such table`` (an OperationalError). Any other table, or anything else 42P01 covers (a
    query missing a FROM entry), is a mistake of the code's, and stays one."""
    from bikshop.extensions import db

    if driver_error is None or not (
        getattr(driver_error, "sqlstate", None) == "42P01"
        or getattr(driver_error, "sqlite_errorname", None) == "SQLITE_ERROR"
    ):
        return False
    found = _MISSING_TABLE.search(str(driver_error))
    return found is not None and (found.group(1) or found.group(2)) in db.metadata.tables


UPGRADE_COMMAND = "flask --app bikshop db upgrade"
NOT_MIGRATED_HINT = f"the database is not migrated: run {UPGRADE_COMMAND}"


def migration_fix(current: str | None, known: frozenset[str]) -> str:
    """What to do about a database at schema revision ``current`` when the code needs another:
    upgrade it, unless it is at a revision this code does not know, which a newer release's
    ``db upgrade`` put there (this server still runs the old code: a reload, or the server not
    yet restarted, where several share the database)."""
    if current is not None and current not in known:
        return (
            f"the database is at {current}, newer than this code: restart this server with the "
            "release that upgraded it (systemctl restart, not reload)"
        )
    return f"run: {UPGRADE_COMMAND}"


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` is the database being out of reach rather than a mistake in what was
    asked of it: unreachable or dropped connections, a full pool, a lock not granted in time,
    a full disk, read-only, its tables not made yet. Such a request is worth retrying later
    (a 503; a command's one line)."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(error, exc.OperationalError | exc.InterfaceError | PoolTimeout):
        return True
    driver_error = getattr(error, "orig", None)
    return read_only_error(driver_error) or missing_table_error(driver_error)


def install_read_only_recovery(engine: Engine) -> None:
    """Drop a connection that a write found read-only, instead of pooling it again.

    ``default_transaction_read_only`` (set by ``ALTER DATABASE``, or a standby's) is fixed for
    a session when it connects, and SQLite opens a file it cannot write read-only for good: a
    pooled connection opened while the database was read-only stays so after the database is
    writable again, and would refuse every write until it died.
    Treated as a lost connection, it is replaced by a fresh one (and, through SQLAlchemy, the
    rest of the pool with it); :class:`DirectStatement` does the same for its writes.
    """

    @event.listens_for(engine, "handle_error")
    def _read_only_is_stale(context) -> None:
        if read_only_error(context.original_exception):
            context.is_disconnect = True


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
    engine = db.engines.get(AUTOCOMMIT)
    if engine is not None:
        with engine.connect() as connection:
            yield connection
        return
    with db.engine.connect() as connection:
        yield connection.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def sqlite_writer(engine: Engine, connection: Connection | None = None) -> Iterator[None]:
    """Hold the SQLite file's writer lock for a write transaction: one process writes at a time,
    and a process waiting its turn is woken the moment the lock is free.

    Without it, gunicorn workers writing at once meet SQLite's busy handler, which sleeps 1, 2,
    5, 10 ms … between retries: the waiting worker idles for a millisecond or more behind a
    write that takes half of that, and under concurrent placeOrders a quarter of them waited
    so (``strace`` on a worker in ``bench/bik_endpoints.py``; about a fifth more orders a
    second with the lock). The lock is an ``flock`` on ``<database>-writer.lock`` beside the
    database: the kernel releases it if its holder dies, and SQLite's own locking still guards
    every write, so a writer that does not take it (a dashboard action, another program) stays
    correct and only waits as before. A server database needs none: a no-op there.

    The wait has one deadline, ``LOCK_WAIT_SECONDS`` from the start: time spent queueing for
    the lock is taken off ``connection``'s busy timeout for this transaction. Without that,
    writers queued behind a transaction another program holds open each waited their full
    busy timeout in turn, the third past gunicorn's worker timeout (killed, no answer).
    """
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    descriptor = None
    if path and path != ":memory:" and not path.startswith("file:"):
        descriptor = _writer_lock_descriptor(path)
    shortened = None
    if descriptor is not None:
        started = time.monotonic()
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except OSError:  # a file system without flock (ENOLCK on some network mounts)
            descriptor = None
        queued = time.monotonic() - started
        if descriptor is not None and connection is not None and queued > _QUEUED_NOTICEABLY:
            shortened = connection.connection.driver_connection
            left = max(0.0, LOCK_WAIT_SECONDS - queued)
            shortened.execute(f"PRAGMA busy_timeout = {int(left * 1000)}")
    try:
        yield
    finally:
        if shortened is not None:
            with suppress(Exception):  # a connection lost meanwhile is not pooled again anyway
                shortened.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_SECONDS * 1000}")
        if descriptor is not None:
            fcntl.flock(descriptor, fcntl.LOCK_UN)


# A turn behind another writer's ordinary half-millisecond write is not worth a PRAGMA.
_QUEUED_NOTICEABLY = 0.05


_WRITER_LOCKS: dict[tuple[int, str], int] = {}


def _writer_lock_descriptor(database: str) -> int | None:
    """This process's open lock file for ``database``, or None where it cannot be made (a full
    disk, a read-only folder: SQLite's own locking is enough to be correct). Per process: a
    descriptor inherited over ``fork`` shares its lock with the parent, and so would threads of
    one process (they take turns on SQLite's lock alone, as before)."""
    key = (os.getpid(), database)
    descriptor = _WRITER_LOCKS.get(key)
    if descriptor is None:
        try:
            descriptor = os.open(f"{database}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return None  # tried again on the next write
        _WRITER_LOCKS[key] = descriptor
    return descriptor


# SQLite copies the WAL back into the database file (a checkpoint: page writes and two fsyncs)
# inside the commit that takes the WAL past ``wal_autocheckpoint`` pages (1,000 by default), so
# under the writer lock, where every other writer waits for its fsyncs. placeOrder instead
# checkpoints after every ORDERS_PER_CHECKPOINT-th order (by number, so once per that many
# orders whatever the number of workers), once its answer is sent; SQLite's own, at
# AUTOCHECKPOINT_PAGES, is a safety net for other writers and for a WAL a long read kept from
# being copied.
ORDERS_PER_CHECKPOINT = 40  # about 900 WAL pages
AUTOCHECKPOINT_PAGES = 4000


def checkpoint_after_response(engine: Engine) -> None:
    """Checkpoint SQLite's WAL once the current answer has been sent (now, outside a request);
    a no-op on a server database."""
    if engine.dialect.name != "sqlite":
        return
    if not has_request_context():
        sqlite_checkpoint(engine)
        return

    @after_this_request
    def _after_sending(response):
        response.call_on_close(lambda: sqlite_checkpoint(engine))
        return response


def sqlite_checkpoint(engine: Engine) -> None:
    """``PRAGMA wal_checkpoint(PASSIVE)``: copy what no reader still needs from the WAL into
    the database file, waiting for nobody and making nobody wait (writers go on appending).
    A failure is logged, not raised: the answer is already sent, and the next checkpoint, or
    SQLite's own, copies the rest."""
    try:
        connection = engine.raw_connection()
        try:
            connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            connection.close()
    except Exception:
        log.warning("SQLite WAL checkpoint failed; the next one will retry", exc_info=True)


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


class DirectStatement:
    """A Core statement run straight on the driver's cursor of a SQLAlchemy ``Connection``.

    It is compiled once per dialect, by SQLAlchemy; parameters and result values go through the
    columns' own SQLAlchemy types (``bind_processor``, ``result_processor``), as
    ``Connection.execute`` would do.

    :meth:`rows` is for statements that return rows (a SELECT, or ``text(...).columns(...)``):
    a read, or a single write in autocommit, which a failure rolls back whole.

    :meth:`write`, :meth:`write_many` and :meth:`write_returning` are for writes inside the
    caller's transaction; an INSERT is compiled for the columns in ``keys`` and every one must
    be given (a column's Python-side default is not applied, so one left out of ``keys`` is
    refused when the plan is made).

    A failed statement is not run again (it may have waited ``LOCK_WAIT_SECONDS`` for a lock,
    and a second wait would outlast the worker): the driver's error is raised as SQLAlchemy's,
    with the connection (and the pool opened like it) dropped when it was lost or read-only,
    as SQLAlchemy does for its own statements; a caller's transaction rolls back as usual.
    """

    def __init__(self, statement: Executable, keys: list[str] | None = None):
        self.statement = statement
        self._keys = keys
        self._plans: dict[str, _Plan] = {}

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[tuple]:
        """Every row of the result, as tuples of Python values."""
        dialect = connection.dialect
        plan = self._plan(dialect, returning=True)
        driver_connection = connection.connection.driver_connection
        values = plan.parameters(params)
        cursor = driver_connection.cursor()
        try:
            cursor.execute(plan.query, values)
            rows = cursor.fetchall()
            if plan.readers is None:  # the driver's column types, known after a first run
                plan.read_with(cursor.description, dialect)
        except dialect.loaded_dbapi.Error as error:
            self._raise(connection, error, plan.sql, values, cursor, many=False)
        finally:
            with suppress(dialect.loaded_dbapi.Error):
                cursor.close()
        return plan.convert(rows)

    def write(self, connection: Connection, params: Mapping[str, Any]) -> int | None:
        """Write one row; returns the driver's ``lastrowid`` (SQLite's new rowid)."""
        return self._write(connection, params, many=False, fetch=False)

    def write_many(self, connection: Connection, rows: list[Mapping[str, Any]]) -> None:
        """Write every row of ``rows`` (the driver's ``executemany``)."""
        if rows:
            self._write(connection, rows, many=True, fetch=False)

    def write_returning(self, connection: Connection, params: Mapping[str, Any]) -> list[tuple]:
        """Write, and return the rows of its RETURNING clause as Python values."""
        return self._write(connection, params, many=False, fetch=True)

    def _write(self, connection: Connection, params, *, many: bool, fetch: bool):
        dialect = connection.dialect
        plan = self._plan(dialect, returning=fetch)
        driver_connection = connection.connection.driver_connection
        values = [plan.parameters(p) for p in params] if many else plan.parameters(params)
        cursor = driver_connection.cursor()
        try:
            if many:
                cursor.executemany(plan.query, values)
                return None
            cursor.execute(plan.query, values)
            if not fetch:
                return getattr(cursor, "lastrowid", None)  # psycopg has none
            rows = cursor.fetchall()
            if plan.readers is None:
                plan.read_with(cursor.description, dialect)
            return plan.convert(rows)
        except dialect.loaded_dbapi.Error as error:
            self._raise(connection, error, plan.sql, values, cursor, many=many)
        finally:
            # An invalidated SQLite connection is closed, and so refuses to close its cursor.
            with suppress(dialect.loaded_dbapi.Error):
                cursor.close()

    @staticmethod
    def _raise(connection: Connection, error, sql: str, values, cursor, *, many: bool):
        """The driver's ``error`` as SQLAlchemy's own, raised at once: not run again, since it
        may have waited out a lock (``lock_timeout``, SQLite's busy timeout) and a second wait
        would outlast the worker's. A lost or read-only connection is dropped first."""
        dialect = connection.dialect
        lost = dialect.is_disconnect(error, connection.connection.driver_connection, cursor)
        lost = lost or read_only_error(error)  # see install_read_only_recovery
        if lost:
            # As SQLAlchemy does for its own statements: the pool's other connections were
            # opened as this one was (to a server now gone, or read-only), so they go too;
            # checked-out ones are dropped when returned.
            connection.invalidate(error)
            connection.engine.dispose()
        raise exc.DBAPIError.instance(
            sql,
            values,
            error,
            dialect.loaded_dbapi.Error,
            hide_parameters=connection.engine.hide_parameters,
            connection_invalidated=lost,
            dialect=dialect,
            ismulti=many,
        ) from error

    def _plan(self, dialect: Dialect, *, returning: bool) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            plan = self._plans[dialect.name] = _Plan(self.statement, dialect, self._keys)
        if returning and not plan.returns_rows:
            raise ValueError("DirectStatement: only statements that return rows")
        return plan


class _Plan:
    """One statement compiled for one dialect: its SQL, how to pass parameters, how to read."""

    def __init__(self, statement: Executable, dialect: Dialect, keys: list[str] | None):
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        if compiled.escaped_bind_names or compiled.post_compile_params:
            raise ValueError("DirectStatement: no escaped names, no expanding parameters")
        if compiled.insert_prefetch or compiled.update_prefetch:
            missing = [c.key for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
            raise ValueError(f"DirectStatement: give every column a value (not {missing})")
        self.sql = compiled.string
        # What the driver is handed: psycopg takes the query as bytes too, and then neither
        # encodes it nor hashes it again (the same bytes object keys its cache of parsed
        # queries); sqlite3 takes text only.
        self.query = self.sql.encode() if dialect.driver == "psycopg" else self.sql
        self._names = list(compiled.positiontup) if compiled.positional else None
        # Per parameter: its name in the SQL, the key it is given by, the bind (for a literal's
        # value, and whether one is required) and the type's conversion: what
        # ``construct_params`` and the execution context would do, worked out once.
        self._slots = [
            (name, bind.key, bind, bind.type.dialect_impl(dialect).bind_processor(dialect))
            for bind, name in compiled.bind_names.items()
        ]
        columns = getattr(statement, "selected_columns", None) or []
        self.returns_rows = bool(columns)
        self._types = [c.type for c in columns]
        self.readers: list[tuple[int, Callable]] | None = None

    def parameters(self, params: Mapping[str, Any]):
        values = {}
        for name, key, bind, processor in self._slots:
            if key in params:
                value = params[key]
            elif bind.required:
                raise exc.InvalidRequestError(f"A value is required for bind parameter {key!r}")
            else:
                value = bind.effective_value
            values[name] = value if processor is None else processor(value)
        if self._names is None:
            return values
        return tuple(values[name] for name in self._names)

    def read_with(self, description, dialect: Dialect) -> None:
        """Each result column's conversion, for the driver's type of it (``description``)."""
        readers = []
        for index, (column_type, described) in enumerate(
            zip(self._types, description, strict=True)
        ):
            processor = column_type.dialect_impl(dialect).result_processor(dialect, described[1])
            if processor is not None:
                readers.append((index, processor))
        self.readers = readers

    def convert(self, rows: list) -> list[tuple]:
        if not self.readers:
            return [tuple(row) for row in rows]
        converted = []
        for row in rows:
            values = list(row)
            for index, processor in self.readers:
                values[index] = processor(values[index])
            converted.append(tuple(values))
        return converted
