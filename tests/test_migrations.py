"""Migrations create exactly what the models declare, on SQLite and PostgreSQL, down and up."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import traceback
import warnings

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from bikshop import create_app
from bikshop.database import dispose_engines
from bikshop.extensions import db
from tests.conftest import BASE_CONFIG, PG_ADMIN_URL, backend_of
from tests.servers import ROOT


@pytest.fixture
def fresh_database(database_url, tmp_path):
    """An empty database on the same backend as ``database_url``: no tables at all."""
    if backend_of(database_url) == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.sqlite3"
        return
    name = f"bikshop_migrate_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flask_db(app, *args: str) -> None:
    result = app.test_cli_runner().invoke(args=["db", *args])
    if result.exc_info and result.exit_code:
        traceback.print_exception(*result.exc_info)  # where in a migration it failed
    assert result.exit_code == 0, result.output + repr(result.exception)


def differences(app) -> list:
    """What ``flask db migrate`` would generate: empty when migrations match the models."""
    with app.app_context(), db.engine.connect() as conn, warnings.catch_warnings():
        # SQLite cannot reflect expression indexes (ix_orders_phone_tail); Alembic skips them.
        # index_names() below checks they exist.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression")
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "render_as_batch": True}
        )
        return compare_metadata(context, db.metadata)


def index_names(app) -> set[str]:
    """Every index in the database, read from the catalog (expression indexes included)."""
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            found = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))
        else:
            found = conn.execute(text("SELECT indexname FROM pg_indexes"))
        return {name for (name,) in found}


def tables(app) -> set[str]:
    with app.app_context():
        found = set(inspect(db.engine).get_table_names())
        dispose_engines()
    return found


def test_upgrade_from_empty_creates_every_model_table_and_matches_the_models(fresh_database):
    app = create_app({**BASE_CONFIG, "DATABASE_URL": fresh_database})
    try:
        assert tables(app) == set()
        flask_db(app, "upgrade")
        assert tables(app) == set(db.metadata.tables) | {"alembic_version"}
        assert differences(app) == []
        declared = {index.name for table in db.metadata.tables.values() for index in table.indexes}
        assert declared <= index_names(app)
        flask_db(app, "downgrade", "base")
        assert tables(app) <= {"alembic_version"}
        flask_db(app, "upgrade")
        assert tables(app) == set(db.metadata.tables) | {"alembic_version"}
        assert differences(app) == []
        with app.app_context():
            assert app.test_client().get("/readyz").status_code == 200
    finally:
        with app.app_context():
            db.session.remove()
            dispose_engines()


def test_the_models_declare_the_tables_bik_orders_need():
    assert {"orders", "order_items", "order_events", "counters"} <= set(db.metadata.tables)


def test_two_upgrades_at_once_on_postgresql_take_turns():
    """Two servers starting together each run the unit's upgrade. Both read the version before
    either wrote it (forced here by holding alembic_version), so both ran 0004 and the second
    died with a traceback; they now take turns on an advisory lock, and the second finds
    nothing to do. PostgreSQL only: SQLite is one machine's file, with the writer lock."""
    name = f"bikshop_migrate_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")}
    env |= {"BIKSHOP_ENV": "development", "BIKSHOP_BIK_AUTH": "none", "BIKSHOP_DATABASE_URL": url}
    flask = [sys.executable, "-m", "flask", "--app", "bikshop"]
    command = [*flask, "db", "upgrade"]
    try:
        subprocess.run([*command, "0003"], cwd=ROOT, env=env, check=True, capture_output=True)
        with psycopg.connect(url) as holder:
            holder.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
            upgrades = [
                subprocess.Popen(
                    command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
                )
                for _ in range(2)
            ]
            time.sleep(3)  # both started and waiting
        outputs = [upgrade.communicate(timeout=60)[0].decode() for upgrade in upgrades]
        assert [upgrade.returncode for upgrade in upgrades] == [0, 0], outputs
        assert not [output for output in outputs if "Traceback" in output]
        with psycopg.connect(url) as conn:
            (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        heads = subprocess.run(
            [*flask, "db", "heads"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert heads.startswith(version)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_database_made_by_the_first_release_is_repaired_by_the_upgrade(fresh_database):
    """0002 and 0003 were edited after the first release: a database made then is stamped
    0003 without payment_links.razorpay_order_id and amount_paid, webhook_events'
    received_event_id, the admin_login_failures table and the dashboard's indexes, and its
    upgrade passed while sign-in and Pay failed. 0006 adds what is missing, keeping every row."""
    app = create_app({**BASE_CONFIG, "DATABASE_URL": fresh_database})
    flask_db(app, "upgrade", "0003")
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO orders (number, public_id, name, draft_order_id, "
                "request_fingerprint, raw_request, invoice_token, status, payment_status, "
                "fulfillment_status, currency, sub_total, shipping_charge, discount, total, "
                "amount_refunded, phone_number, phone_digits, customer_name, created_at, "
                "updated_at, version) VALUES (1001, 'ORD-1001', '#1001', 'nb_1', 'f', '{}', "
                "'tok', 'ORDERED', 'paid', 'unfulfilled', 'INR', 947, 0, 0, 947, 0, '+91', "
                "'91', 'A', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO payment_links (order_id, reference_id, amount, currency, "
                "amount_paid, status, created_at, updated_at) VALUES ((SELECT id FROM orders), "
                "'ref-1', 947, 'INR', 0, 'paid', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        # As the first release made it: without what 0002 and 0003 gained afterwards.
        for name in (
            "ix_payment_links_razorpay_order_id",
            "ix_webhook_events_order_id",
            "ix_orders_status_id",
            "ix_orders_payment_status_id",
            "ix_orders_fulfillment_status_id",
            "ix_orders_phone_tail",
            "ix_orders_awaiting_payment",
            "ix_orders_to_ship",
        ):
            conn.execute(text(f"DROP INDEX {name}"))
        conn.execute(text("DROP TABLE admin_login_failures"))
        for table, column in (
            ("payment_links", "razorpay_order_id"),
            ("payment_links", "amount_paid"),
            ("webhook_events", "received_event_id"),
        ):
            conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
    assert differences(app)  # broken as those databases were
    flask_db(app, "upgrade")
    assert differences(app) == []
    assert {"ix_orders_phone_tail", "ix_orders_to_ship", "ix_payment_links_razorpay_order_id"} <= (
        index_names(app)
    )
    with app.app_context(), db.engine.connect() as conn:
        paid = conn.execute(text("SELECT amount_paid FROM payment_links")).scalar_one()
        orders = conn.execute(text("SELECT count(*) FROM orders")).scalar_one()
    assert (paid, orders) == (947, 1)  # a paid link took its amount; the order is kept
    flask_db(app, "upgrade")  # again: nothing to do
    with app.app_context():
        dispose_engines()  # no pooled connection left for the garbage collector to find open


def test_a_server_on_a_database_never_migrated_says_so(fresh_database, caplog):
    """Served before the release step's ``db upgrade``: on PostgreSQL both of Bik's calls
    were 500s with a traceback (a missing table is a ProgrammingError there), and /readyz said
    the database was unreachable on both. Now Bik gets the 503 it retries, the log says to
    run ``db upgrade``, and /readyz says the database answers but is not migrated."""
    import logging

    from tests.bik import assert_error_shape, sample_body

    app = create_app({**BASE_CONFIG, "DATABASE_URL": fresh_database})
    client = app.test_client()
    caplog.set_level(logging.ERROR, logger="bikshop.errors")
    try:
        for path, body in (("/bik/placeOrder", sample_body()), ("/bik/getOrder", {"orderId": "x"})):
            answer = client.post(path, json=body)
            assert assert_error_shape(answer, 503)["code"] == "service_unavailable"
            assert answer.headers["Retry-After"] == "5"
        logged = [r.getMessage() for r in caplog.records]
        assert len(logged) == 2 and all(
            "(the database is not migrated: run flask --app bikshop db upgrade)" in line
            for line in logged
        ), logged
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json() == {
            "status": "unavailable",
            "database": "ok",
            "migrations": {
                "current": None,
                "head": app.extensions["bikshop.migration_head"],
                "fix": "run: flask --app bikshop db upgrade",
            },
        }
    finally:
        with app.app_context():
            dispose_engines()


def test_a_command_on_a_database_never_migrated_says_to_run_db_upgrade(fresh_database):
    """An operator's command before the release step: its one line names the fix, where it
    named only the missing table."""
    app = create_app({**BASE_CONFIG, "DATABASE_URL": fresh_database})
    try:
        result = app.test_cli_runner().invoke(args=["list-admins"])
    finally:
        with app.app_context():
            dispose_engines()
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: list-admins stopped: the database at BIKSHOP_DATABASE_URL")
    assert line.endswith("; the database is not migrated: run flask --app bikshop db upgrade)")


@pytest.mark.parametrize(
    ("query", "ours"),
    [
        ("SELECT * FROM orders", True),
        ("SELECT * FROM counters", True),
        ("SELECT * FROM no_such_table", False),  # not bikshop's: a mistake in the code
        ("SELECT pg_class.oid FROM pg_namespace", False),  # 42P01 on PostgreSQL, no table
    ],
)
def test_only_bikshop_s_own_tables_missing_read_as_not_migrated(fresh_database, query, ours):
    """A missing table answers 503 'not migrated' only when it is one of bikshop's: PostgreSQL
    files other mistakes under the same SQLSTATE, and they stay 500s with their traceback."""
    from sqlalchemy import create_engine

    from bikshop.database import missing_table_error

    app = create_app({**BASE_CONFIG, "DATABASE_URL": fresh_database})
    engine = create_engine(fresh_database.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection, pytest.raises(Exception) as caught:
            connection.execute(text(query))
        with app.app_context():
            assert missing_table_error(caught.value.orig) is ours
    finally:
        engine.dispose()


def test_a_sqlite_database_is_readable_by_its_owner_only_whatever_the_umask(tmp_path):
    """`flask db upgrade` under the usual umask 022 made bikshop.sqlite3 and its -wal and
    -shm world-readable: customers' data, password hashes, invoice tokens (security probe).
    Every connection now takes the group's and others' access off."""
    url = f"sqlite:///{tmp_path / 'bikshop.sqlite3'}"
    before = os.umask(0o022)
    try:
        app = create_app({**BASE_CONFIG, "DATABASE_URL": url})
        flask_db(app, "upgrade")
        client = app.test_client()
        from tests.bik import place, sample_body

        assert place(client, sample_body()).status_code == 200
        files = sorted(tmp_path.glob("bikshop.sqlite3*"))
        assert {f.name for f in files} >= {"bikshop.sqlite3", "bikshop.sqlite3-wal"}
        modes = {f.name: f.stat().st_mode & 0o777 for f in files if not f.name.endswith("lock")}
        assert set(modes.values()) == {0o600}, modes
    finally:
        os.umask(before)
        with app.app_context():
            dispose_engines()
