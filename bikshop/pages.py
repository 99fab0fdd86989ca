"""HTML error pages for people (customers and the shop owner), never a stack trace."""

from __future__ import annotations

from flask import render_template, request
from werkzeug.exceptions import HTTPException

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
    response = render_template(
        "error.html", status=status, title=title, message=message, dashboard_url=dashboard_url
    )
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    return response, status, headers
