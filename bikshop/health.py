"""Liveness and readiness probes for process managers and load balancers."""

from __future__ import annotations

import os

from flask import Blueprint, current_app
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from bikshop.database import migration_fix
from bikshop.errors import RETRY_SOON
from bikshop.extensions import db
from bikshop.sqlite_access import access_problem

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up; touches nothing else."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """The database answers, takes writes, and its schema is at the newest migration."""
    try:
        read_only = _read_only()
        current = None  # no alembic_version table: never migrated
        if inspect(db.session.connection()).has_table("alembic_version"):
            current = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if read_only:
            # This connection's mode was fixed when it opened (ALTER DATABASE, a standby):
            # drop it, so the next probe sees the database as it is then, not as it was.
            db.session.connection().invalidate()
            db.engine.dispose()  # and the rest of the pool, opened as this one was
    except Exception as exc:  # any driver error means "not ready", never a 500
        db.session.rollback()
        files = access_problem(exc, current_app.config["SQLALCHEMY_DATABASE_URI"])
        current_app.logger.warning(
            "readyz: database unavailable: %s%s", type(exc).__name__, f": {files}" if files else ""
        )
        return {"status": "unavailable", "database": "unreachable"}, 503, RETRY_SOON
    finally:
        db.session.remove()
    if read_only:
        # placeOrder would answer 503 to every order: not a server to send Bik to.
        current_app.logger.warning("readyz: the database is read-only")
        return {"status": "unavailable", "database": "read-only"}, 503, RETRY_SOON
    head = current_app.extensions["bikshop.migration_head"]
    if current != head:
        return (
            {
                "status": "unavailable",
                "database": "ok",
                "migrations": {
                    "current": current,
                    "head": head,
                    "fix": migration_fix(
                        current, current_app.extensions["bikshop.migration_revisions"]
                    ),
                },
            },
            503,
            RETRY_SOON,
        )
    return {"status": "ok", "database": "ok", "migrations": {"current": current, "head": head}}


def _read_only() -> bool:
    """Whether a write would be refused: PostgreSQL's session mode (a read-only default, a
    standby), or for SQLite a file this process cannot write (its mode, a read-only mount)."""
    if db.engine.dialect.name == "postgresql":
        return db.session.execute(text("SHOW transaction_read_only")).scalar() == "on"
    db.session.execute(text("SELECT 1"))
    path = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"]).database or ""
    if path in ("", ":memory:") or path.startswith("file:"):
        return False
    return not os.access(path, os.W_OK)
