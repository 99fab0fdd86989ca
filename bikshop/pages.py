"""HTML error pages for people (customers and the shop owner), never a stack trace."""

from __future__ import annotations

import logging

from flask import current_app, render_template, request
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from bikshop.services.invoices import store

log = logging.getLogger(__name__)

_TITLES = {
    400: "That request didn't make sense",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed",
    413: "Too large",
    429: "Too many requests",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}


def error_page(error: HTTPException):
    """Render ``templates/error.html`` for ``error`` with its status code."""
    status = error.code or 500
    title = _TITLES.get(status, error.name)
    message = (
        error.description
        if status < 500
        else (
            "Please try again in a moment."
            if status == 503
            else "We've been told. Please try again."
        )
    )
    # A dashboard error leads back to the order list (an invoice's leads back to the invoice).
    # Not url_for: an untrusted Host leaves the request without a URL adapter.
    dashboard_url = request.script_root + "/admin/" if request.path.startswith("/admin") else None
    # A customer whose invoice link failed (mistyped, cut short) is told whom to ask.
    shop = store() if request.path.startswith("/invoice/") else None
    _signed_in_or_anonymous()
    response = render_template(
        "error.html",
        status=status,
        title=title,
        message=message,
        dashboard_url=dashboard_url,
        shop=shop,
    )
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    return response, status, headers


def _signed_in_or_anonymous() -> None:
    """Settle who is signed in before the page is drawn. Every template's context asks
    Flask-Login for the user, which a dashboard sign-in loads from the database: when the
    database is what failed, that load would fail again inside this error handler, and the
    owner would get the server's bare 500 instead of this page. Then the page is drawn for
    nobody signed in."""
    try:
        current_user._get_current_object()
    except SQLAlchemyError as exc:
        log.info("error page drawn without the signed-in owner: %s", type(exc).__name__)
        # Flask-Login's own way to set the request's user (None: its anonymous user).
        current_app.login_manager._update_request_context_with_user(None)
