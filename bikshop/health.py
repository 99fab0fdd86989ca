"""Liveness and readiness probes for process managers and load balancers."""

from __future__ import annotations

from flask import Blueprint, current_app
from sqlalchemy import text

from bikshop.extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up; touches nothing else."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """The database answers and its schema is at the newest migration."""
    try:
        db.session.execute(text("SELECT 1"))
        current = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:  # any driver error means "not ready", never a 500
        db.session.rollback()
        current_app.logger.warning("readyz: database unavailable: %s", type(exc).__name__)
        return {"status": "unavailable", "database": "unreachable"}, 503
    finally:
        db.session.remove()
    head = current_app.extensions["bikshop.migration_head"]
    if current != head:
        return {
            "status": "unavailable",
            "database": "ok",
            "migrations": {
                "current": current,
                "head": head,
                "fix": "run: flask --app bikshop db upgrade",
            },
        }, 503
    return {"status": "ok", "database": "ok", "migrations": {"current": current, "head": head}}
