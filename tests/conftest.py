"""Fixtures: every database test runs on SQLite and on the local PostgreSQL, both migrated."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bikshop import create_app
from tests.admin_support import admin_app, owner  # noqa: F401 (fixtures)
from tests.browser import browser, desktop_page, phone_page  # noqa: F401 (fixtures)
from tests.databases import scratch_postgresql
from tests.servers import GunicornServer

PG_ADMIN_URL = os.environ.get(
    "BIKSHOP_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = os.environ.get("BIKSHOP_TEST_BACKENDS", "sqlite,postgresql").split(",")
OUTPUT = Path(os.environ.get("BIKSHOP_TEST_OUTPUT", Path(__file__).parent.parent / "test-output"))

BASE_CONFIG = {
    "ENV": "production",
    "SECRET_KEY": "test-secret-key-0123456789-abcdefghij",
    "BIK_AUTH": "none",
    "TESTING": True,
    "STORE_NAME": "Glow Naturals",
}


def pytest_collection_modifyitems(config, items):
    """A test marked ``sqlite_only`` (SQLite's own mechanisms: the writer lock, checkpoints)
    runs on SQLite alone: its PostgreSQL instance is deselected, not collected as a skip."""
    selected, deselected = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("database_url") if callspec else None
        off = item.get_closest_marker("sqlite_only") and backend not in (None, "sqlite")
        (deselected if off else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where tests save screenshots and PDFs for people to look at."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request, tmp_path_factory):
    """A migrated, empty database per backend for the whole session; dropped at the end."""
    with migrated_database(request.param, tmp_path_factory.mktemp("sqlite")) as url:
        yield url


@contextmanager
def migrated_database(backend: str, folder: Path, prefix: str = "bikshop_test_") -> Iterator[str]:
    """A migrated, empty database: a SQLite file in ``folder``, or ``<prefix><random>`` on the
    local PostgreSQL, dropped afterwards. Yields its URL."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / 'bikshop.sqlite3'}"
        _migrate(url)
        yield url
        return
    with scratch_postgresql(PG_ADMIN_URL, prefix, _migrate) as url:
        yield url


def _migrate(url: str) -> None:
    from flask_migrate import upgrade

    app = create_app({**BASE_CONFIG, "DATABASE_URL": url})
    with app.app_context():
        upgrade()
        from bikshop.database import dispose_engines

        dispose_engines()


def backend_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def empty_database(url: str) -> None:
    """Delete every row (migrations stay applied), so each test starts clean."""
    from bikshop.extensions import db

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


@pytest.fixture
def make_app(database_url):
    """Build an app on the test database with extra settings; the database starts empty."""
    empty_database(database_url)
    apps = []

    def factory(**overrides):
        app = create_app({**BASE_CONFIG, "DATABASE_URL": database_url, **overrides})
        apps.append(app)
        return app

    yield factory
    from bikshop.database import dispose_engines
    from bikshop.extensions import db

    for app in apps:
        with app.app_context():
            db.session.remove()
            dispose_engines()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def gunicorn(database_url, tmp_path):
    """Start real gunicorn servers on the test database: ``gunicorn(workers=4, env={...})``."""
    empty_database(database_url)
    servers: list[GunicornServer] = []

    def start(workers: int = 2, env: dict | None = None, **kwargs) -> GunicornServer:
        settings = {f"BIKSHOP_{k}": str(v) for k, v in BASE_CONFIG.items() if k != "TESTING"}
        settings["BIKSHOP_DATABASE_URL"] = database_url
        settings.update(env or {})
        server = GunicornServer(workers=workers, env=settings, log_dir=tmp_path, **kwargs)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()
