"""bikshop: the order backend a brand runs so its customers can buy inside WhatsApp via Bik."""

from __future__ import annotations

import contextlib
import os
import sys

from flask import Flask, request
from flask.cli import FlaskGroup, NoAppException
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException

from bikshop import config as settings
from bikshop.config import ConfigError
from bikshop.database import AUTOCHECKPOINT_PAGES
from bikshop.flaskapp import BikshopFlask
from bikshop.jsonio import BikshopJSONProvider

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

__all__ = ["ConfigError", "create_app"]


def create_app(config: dict | None = None) -> Flask:
    """Build the app: settings, extensions, blueprints, error handlers, commands."""
    try:
        return _build_app(config)
    except ConfigError as exc:
        if not _listing_flask_commands():
            raise
        # `flask --app bikshop --help` lists the app's commands by loading it, and prints the
        # traceback of any error but Flask's own NoAppException (shown as one line). The
        # commands that need no settings (check-config, check-bik) are listed either way.
        raise NoAppException(
            f"{exc.message}\n(the commands that need these settings, such as `db upgrade`, "
            "are listed once they are set)"
        ) from None


def _listing_flask_commands() -> bool:
    """Whether Flask's CLI is loading the app only to list its commands (``--help``)."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code is FlaskGroup.list_commands.__code__:
            return True
        frame = frame.f_back
    return False


def _build_app(config: dict | None) -> Flask:
    app = BikshopFlask(
        __name__,
        template_folder=os.path.join(ROOT, "templates"),
        static_folder=os.path.join(ROOT, "static"),
        instance_relative_config=True,
    )
    app.json = BikshopJSONProvider(app)
    settings.load(app, config)
    register_operations(app)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    register_rate_limits(app)  # last: it attaches limits to the registered routes
    return app


def register_operations(app: Flask) -> None:
    """JSON logs with request ids, metrics, proxy headers and security headers."""
    from bikshop import logging as json_logs
    from bikshop import metrics, security

    json_logs.init_app(app)
    metrics.init_app(app)
    security.init_app(app)


def register_rate_limits(app: Flask) -> None:
    """Flask-Limiter on the abusable routes (bikshop/ratelimit.py)."""
    from bikshop import ratelimit

    ratelimit.configure(app)


def register_extensions(app: Flask) -> None:
    from bikshop import models  # noqa: F401  (registers the tables)
    from bikshop.api import document_nullable_nested
    from bikshop.database import (
        engine_binds,
        engine_options,
        install_idle_ping,
        install_read_only_recovery,
    )
    from bikshop.extensions import api, compress, db, migrate
    from bikshop.services.search import install_lowered

    database_uri = app.config["SQLALCHEMY_DATABASE_URI"]
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(database_uri))
    app.config.setdefault("SQLALCHEMY_BINDS", engine_binds(database_uri))
    app.config.update(
        API_TITLE="bikshop",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
    )
    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            install_idle_ping(engine, app.config["DATABASE_PING_AFTER_IDLE"])
            install_read_only_recovery(engine)
            install_lowered(engine)
    migrations = os.path.join(ROOT, "migrations")
    migrate.init_app(app, db, directory=migrations, render_as_batch=True)
    api.init_app(app)
    document_nullable_nested(api)
    _register_security_schemes(api, app.config["BIK_AUTH_SPECS"])
    app.config.setdefault("COMPRESS_REGISTER", False)
    app.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    compress.init_app(app)
    app.extensions["bikshop.migration_head"], app.extensions["bikshop.migration_revisions"] = (
        _migration_revisions(migrations)
    )


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    # Customers' data, password hashes and invoice tokens: readable by bikshop's user alone,
    # whatever the umask that made the file (SQLite gives its -wal and -shm the file's mode).
    for _, name, path in cursor.execute("PRAGMA database_list").fetchall():
        if name == "main" and path:
            _owner_only(path)
    # WAL: readers never wait for the writer; NORMAL sync is durable across process crashes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")  # see database.py
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _owner_only(path: str) -> None:
    """Take the group's and others' access off the SQLite file at ``path`` and its -wal and
    -shm; the owner's stays as it is (a file made read-only stays read-only). A file another
    user owns is left as it is (SQLite still reads it)."""
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(OSError):  # absent, or not this user's to change
            mode = os.stat(name).st_mode & 0o777
            if mode & 0o077:
                os.chmod(name, mode & 0o700)


def _migration_revisions(directory: str) -> tuple[str | None, frozenset[str]]:
    """The code's newest schema revision, and every revision it knows."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(directory))
    known = frozenset(revision.revision for revision in script.walk_revisions())
    return script.get_current_head(), known


def _alembic_config(directory: str):
    from alembic.config import Config

    cfg = Config(os.path.join(directory, "alembic.ini"))
    cfg.set_main_option("script_location", directory)
    return cfg


def _register_security_schemes(api, specs: dict) -> None:
    """Document the auth Bik must send, with the API-key header this deployment chose."""
    spec = api.spec
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme("basic", {"type": "http", "scheme": "basic"})
    headers = sorted({s.header for s in specs.values() if s.scheme == "apikey"}) or ["X-Api-Key"]
    for header in headers:
        name = "apiKey" if len(headers) == 1 else f"apiKey-{header}"
        spec.components.security_scheme(name, {"type": "apiKey", "in": "header", "name": header})


def register_blueprints(app: Flask) -> None:
    from bikshop import health
    from bikshop.admin import bp as admin_bp
    from bikshop.bik import blp as bik_blp
    from bikshop.extensions import api
    from bikshop.invoice import bp as invoice_bp
    from bikshop.payments import bp as payments_bp

    api.register_blueprint(bik_blp)
    app.register_blueprint(invoice_bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(payments_bp)


def register_errorhandlers(app: Flask) -> None:
    from bikshop.errors import as_http_error, http_error_response
    from bikshop.pages import error_page

    def handle_http(error: HTTPException):
        return error_page(error) if _wants_html() else http_error_response(error)

    def handle_unexpected(error: Exception):
        return handle_http(as_http_error(error))

    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(Exception, handle_unexpected)


def _wants_html() -> bool:
    from bikshop.errors import meant_for_bik

    path = request.path
    if path.startswith(("/bik/", "/webhooks/", "/openapi", "/healthz", "/readyz")):
        return False
    if meant_for_bik(path) and not path.startswith(("/admin", "/invoice/")):
        return False  # a Bik URL mistyped, opened in a browser to check it: say which
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html" or path.startswith(("/invoice/", "/admin"))


def register_commands(app: Flask) -> None:
    from bikshop.cli import register

    register(app)
