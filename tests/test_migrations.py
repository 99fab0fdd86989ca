"""Migrations create exactly what the models declare, on SQLite and PostgreSQL, down and up."""

from __future__ import annotations

import secrets
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
