"""One JSON error shape for every API answer that is not a success."""

from __future__ import annotations

import contextlib
import logging

from flask import current_app, jsonify, request
from marshmallow import Schema, fields
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError

log = logging.getLogger(__name__)

# Machine-readable codes per status, for people reading Bik's logs.
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(HTTPException):
    """An error a service raises for the client: status, code, message, offending fields."""

    def __init__(self, status: int, message: str, *, code: str | None = None, fields=None):
        super().__init__(description=message)
        self.code = status
        self.error_code = code or CODES.get(status, "error")
        self.fields = fields or []


# For the OpenAPI document only (required: every key is in every error answer).
class ErrorDetail(Schema):
    field = fields.String(allow_none=True, required=True)
    message = fields.String(required=True)


class ErrorBody(Schema):
    status = fields.Integer(required=True)
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields_ = fields.List(fields.Nested(ErrorDetail), data_key="fields", required=True)


class ErrorEnvelope(Schema):
    """Every non-2xx answer: ``{"error": {status, code, message, fields}}`` (for OpenAPI)."""

    error = fields.Nested(ErrorBody, required=True)


def error_body(status: int, message: str, *, code: str | None = None, fields=None) -> dict:
    """The error payload: ``{"error": {"status", "code", "message", "fields": [...]}}``."""
    return {
        "error": {
            "status": status,
            "code": code or CODES.get(status, "error"),
            "message": message,
            "fields": fields or [],
        }
    }


def flatten_messages(messages, path: str = "") -> list[dict]:
    """Turn marshmallow's nested messages into ``[{"field": "order.items[0].price", ...}]``."""
    found: list[dict] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if isinstance(key, int):
                child = f"{path}[{key}]"
            elif key == "_schema":
                child = path
            else:
                child = f"{path}.{key}" if path else str(key)
            found.extend(flatten_messages(value, child))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        found.append({"field": path or None, "message": " ".join(messages)})
    elif isinstance(messages, list):
        for item in messages:
            found.extend(flatten_messages(item, path))
    else:
        found.append({"field": path or None, "message": str(messages)})
    return found


def http_error_response(error: HTTPException):
    """Render any HTTPException (ours, webargs', werkzeug's) in the one error shape."""
    status = error.code or 500
    if isinstance(error, ApiError):
        body = error_body(status, error.description, code=error.error_code, fields=error.fields)
    else:
        data = getattr(error, "data", None) or {}
        messages = data.get("messages")
        fields = []
        if messages is not None:
            # webargs nests by location first: {"json": {...}}; the location is noise to a client.
            if isinstance(messages, dict) and set(messages) <= {"json", "query", "querystring"}:
                messages = next(iter(messages.values()), {})
            fields = flatten_messages(messages)
        message = data.get("message") or _describe(status, error, fields)
        body = error_body(status, message, fields=fields)
    response = jsonify(body)
    response.status_code = status
    for name, value in getattr(error, "get_headers", lambda: [])():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def _describe(status: int, error: HTTPException, fields: list[dict]) -> str:
    if fields:
        first = fields[0]
        where = f"{first['field']}: " if first["field"] else ""
        more = f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""
        return f"{where}{first['message']}{more}"
    if status == 405:
        allowed = ", ".join(getattr(error, "valid_methods", None) or [])
        return f"{request.method} is not allowed here" + (f"; use {allowed}" if allowed else "")
    if status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return f"The request body is larger than {limit} bytes"
    if status == 404 and meant_for_bik(request.path):
        # A mistyped URL in Bik's onboarding screen: say which ones exist, and what to enter
        # where the screen asks for a root URL that Bik adds the endpoint's name to.
        return (
            f"No Bik endpoint at {request.path[:80]}: bikshop answers POST /bik/placeOrder and "
            "POST /bik/getOrder (letter case matters); where Bik asks for a root URL, enter "
            "https://<this host>/bik"
        )
    return error.description or error.name


def meant_for_bik(path: str) -> bool:
    """/bik itself (the root URL entered where Bik wanted an endpoint's), a path under /bik/,
    or one ending in an endpoint's name (``/placeOrder`` at the root, or
    ``/bik/placeOrder/placeOrder``: a full URL registered where Bik wanted a root)."""
    last = path.rstrip("/").rsplit("/", 1)[-1].lower()
    return path.startswith("/bik/") or path == "/bik" or last in ("placeorder", "getorder")


UNREADABLE_BODY = (
    "The request body could not be read: its chunked encoding is malformed or the "
    "connection closed before the whole body arrived"
)


# When to ask again after a 503 for the database (its answers, and /readyz's).
RETRY_SOON = {"Retry-After": "5"}


class DatabaseUnavailable(HTTPException):
    """The database cannot be reached, is read-only or is full: retry later."""

    code = 503
    description = "The database is unavailable right now; nothing was changed. Retry shortly."

    def get_headers(self, environ=None, scope=None):
        return list(RETRY_SOON.items())


def as_http_error(error: Exception) -> HTTPException:
    """Map an unexpected exception to what the client is told; log it, roll back."""
    from bikshop.database import NOT_MIGRATED_HINT, missing_table_error, unavailable
    from bikshop.extensions import db
    from bikshop.sqlite_access import access_problem

    if _unreadable_body(error):
        return BadRequest(UNREADABLE_BODY)
    with contextlib.suppress(Exception):  # the connection may be gone; the pool replaces it
        db.session.rollback()
    if unavailable(error):
        cause = getattr(error, "orig", None) or error
        # The driver's first line says why ("database is locked", "attempt to write a readonly
        # database", "connection refused"); never the statement or its values.
        reason = (str(cause).strip().splitlines() or [""])[0][:200]
        if missing_table_error(cause):
            reason += f" ({NOT_MIGRATED_HINT})"
        elif files := access_problem(cause, current_app.config["SQLALCHEMY_DATABASE_URI"]):
            reason += f": {files}"  # SQLite files this user cannot open: whose, and the chown
        log.error(
            "database unavailable on %s %s: %s: %s",
            request.method,
            request.path,
            type(cause).__name__,
            reason,
        )
        return DatabaseUnavailable()
    log.exception("unhandled error on %s %s", request.method, request.path)
    return InternalServerError("Something went wrong on our side; nothing was changed.")


def _unreadable_body(error: Exception) -> bool:
    """gunicorn's errors from reading a request body (a malformed chunk, a body cut short),
    which reach the app while it reads ``wsgi.input``: the client's fault, not ours."""
    try:
        from gunicorn.http.errors import NoMoreData, ParseException
    except ImportError:  # served by something else
        return False
    return isinstance(error, ParseException | NoMoreData)
