"""Structured logs: one JSON object per line, a request id on each, secrets and contacts masked.

The request id comes from the client's ``X-Request-ID`` (nginx sets one) when it looks sane, or
is made here; it is echoed in the answer and stamped on every line logged while serving it.
gunicorn's own lines (access and error logs) go through the same formatter via ``GunicornLogger``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Flask, has_request_context, request
from gunicorn.glogging import Logger as _GunicornBaseLogger

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_ENVIRON = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:+/=@-]{1,128}$")

# Values that must never reach a log line, whatever code logs them.
_SECRET_KEYS = (
    "SECRET_KEY",
    "RAZORPAY_KEY_SECRET",
    "RAZORPAY_WEBHOOK_SECRET",
    "RAZORPAY_WEBHOOK_SECRET_PREVIOUS",
    "METRICS_TOKEN",
)
_AUTH_KEYS = ("BIK_AUTH", "BIK_PLACE_ORDER_AUTH", "BIK_GET_ORDER_AUTH")

# An email, or a UPI id (priya.sharma@okhdfc, 9811122334@paytm: a handle without a dot, which
# starts with a letter so that nothing@1.2 reads as one).
_EMAIL = re.compile(
    r"([A-Za-z0-9])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|[A-Za-z][A-Za-z0-9]+\b)"
)
# 10 to 15 digits, optionally led by + and split by single spaces or hyphens, or brackets
# around a group (+91 (981) 112-2334), or after a + by dots too (+91.98111.22334); not part of
# a longer word, number, decimal or time (so draft ids, amounts, timestamps and dates stay
# readable). After a colon only when led by + (phone:+919811122334), as "id":6862852391049
# is a product's.
_PHONE = re.compile(
    r"(?:(?<=:)(?=\+)|(?<![\w.+:/-]))"
    r"(?:\+\d(?:(?:[ .-]?\(|\)[ .-]?|[ .-])?\d){9,14}|\(?\d(?:(?:[ -]?\(|\)[ -]?|[ -])?\d){9,14})"
    r"(?![\w:]|\.\d)"
)
# Invoice links carry a bearer token in the path: the route is enough to read a log.
_INVOICE_TOKEN = re.compile(r"(/invoice/)[A-Za-z0-9_-]{16,}")
# A requested path may carry a token anywhere a client put it (/invoice/../<token>,
# /invoice//<token>, another route): no route of bikshop's has a run of 32 URL-safe characters,
# a token is one, so in an access line's path every such run is masked.
_TOKEN_IN_PATH = re.compile(r"[A-Za-z0-9_-]{32,}")
_CREDENTIAL = re.compile(
    r"(?i)\b((?:authorization|password|token|secret)[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?:bearer|basic)\s+)?|(?:bearer|basic)\s+)[^\s\"',;&]+"
)
# A run of 32 or more URL-safe characters in both letter cases, as secrets.token_urlsafe makes
# them (invoice tokens are 32, dashboard session keys 43), is masked in an exception's own text,
# where a client's token can turn up under any prefix. Both cases, not pure hex: names
# (snake_case columns and constraints, ALL_CAPS settings) and hex ids (request ids, hashes)
# stay readable; a token lacks either case once in about 10^7.
_TOKEN_LIKE = re.compile(
    r"(?<![A-Za-z0-9_-])(?![0-9A-Fa-f]+(?![A-Za-z0-9_-]))"
    r"(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z])[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_-])"
)

# Every pattern above needs one of these to match: text without any is left as it is, at the cost
# of one search instead of four substitutions (most log values: methods, routes, ids, statuses).
_MAYBE_MASKED = re.compile(
    r"(?i:authorization|password|token|secret|bearer|basic)|/invoice/|@|\d(?:[ .()-]{0,2}\d){9}"
)

_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


class Masker:
    """Replaces configured secrets, credentials, invoice tokens, phone numbers and emails."""

    def __init__(self, secrets: list[str] | None = None):
        # Longest first, so a secret that contains another is replaced whole.
        self.secrets = sorted(
            {s for s in secrets or [] if s and len(s) >= 6}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[secret]")
        if not _MAYBE_MASKED.search(text):
            return text
        text = _CREDENTIAL.sub(r"\1[secret]", text)
        text = _INVOICE_TOKEN.sub(r"\1[token]", text)
        text = _EMAIL.sub(r"\1***@\2", text)
        return _PHONE.sub(_mask_phone, text)

    def value(self, value):
        """Mask strings inside any JSON-able value."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


def _mask_phone(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "*" * (len(digits) - 2) + digits[-2:]


def _exception_text(error: BaseException) -> str:
    """What a log may show of an exception's own text: a database error's main message (and
    constraint), without the DETAIL PostgreSQL adds, and no token-like run.

    A CHECK or NOT NULL violation's DETAIL is "Failing row contains (...)", the whole row (the
    customer's name, address and invoice token); a unique or foreign key violation's is
    "Key (column)=(value)". The main message names the constraint, which is what an operator
    needs; the driver's ``diag`` gives it apart from the rest, however a value spans lines.
    """
    text = _str(error)
    driver_error = getattr(error, "orig", None) or error  # SQLAlchemy's error quotes the driver's
    diag = getattr(driver_error, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if primary:
        constraint = getattr(diag, "constraint_name", None)
        if constraint and constraint not in primary:
            primary += f' (constraint "{constraint}")'
        text = text.replace(str(driver_error), primary)
    return _TOKEN_LIKE.sub("[token]", text)


def _str(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # a traceback shows such an exception by its type alone
        return ""


def _exception_chain(error: BaseException | None) -> list[BaseException]:
    """``error`` and every exception it was raised from or while handling, each once."""
    found: list[BaseException] = []
    waiting = [error]
    while waiting:
        error = waiting.pop()
        if error is not None and all(error is not seen for seen in found):
            found.append(error)
            waiting += [error.__cause__, error.__context__]
    return found


def _shown_type(error: BaseException) -> str:
    """The exception's type as a traceback's last line names it."""
    kind = type(error)
    if kind.__module__ in ("__main__", "builtins"):
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "request_id", ...extra, "exc"}`` on one line."""

    def __init__(self, masker: Masker | None = None):
        super().__init__()
        self.masker = masker or Masker()

    def formatException(self, exc_info) -> str:
        """The traceback, each exception's own text as :func:`_exception_text` shows it."""
        text = super().formatException(exc_info)
        for error in _exception_chain(exc_info[1]):
            raw, shown = _str(error), _exception_text(error)
            if shown != raw:
                kind = _shown_type(error)
                text = text.replace(f"{kind}: {raw}", f"{kind}: {shown}")
        return text

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _message(record),
        }
        request_id = getattr(record, "request_id", None) or _current_request_id()
        if request_id:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in line and not key.startswith("_"):
                line[key] = value if _jsonable(value) else repr(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        masked = self.masker.value(line)
        masked["ts"] = line["ts"]
        return json.dumps(masked, ensure_ascii=False, default=str)


def _message(record: logging.LogRecord) -> str:
    """The record's message, an exception among its arguments shown by :func:`_exception_text`."""
    args = record.args
    if isinstance(args, tuple) and any(isinstance(arg, BaseException) for arg in args):
        shown = tuple(_exception_text(a) if isinstance(a, BaseException) else a for a in args)
        return str(record.msg) % shown
    return record.getMessage()


def _jsonable(value) -> bool:
    return isinstance(value, str | int | float | bool | type(None) | dict | list | tuple)


def _current_request_id() -> str | None:
    if has_request_context():
        return request.environ.get(_REQUEST_ID_KEY)
    return None


def secret_values(config) -> list[str]:
    """The configured secrets: keys, webhook secrets, Bik credentials, the database password."""
    found = [config.get(key) for key in _SECRET_KEYS]
    for key in _AUTH_KEYS:
        spec = config.get(key) or ""
        scheme, _, rest = spec.partition(":")
        if scheme == "bearer":
            found.append(rest)
        elif scheme in ("apikey", "basic"):  # apikey:<Header>:<token>, basic:<user>:<password>
            found.append(rest.partition(":")[2])
    url = config.get("DATABASE_URL") or ""
    if "://" in url:
        try:
            found.append(urlsplit(url).password)
        except ValueError:  # a malformed URL (refused at start, with one line): mask it anyway
            written = _URL_PASSWORD.search(url)
            found.append(written[1] if written else None)
    return [s for s in found if s]


# user:password@ in a URL urlsplit cannot read ("postgresql://u:pw@[::1/x").
_URL_PASSWORD = re.compile(r"://[^:/@]*:([^@]*)@")


_handler: logging.Handler | None = None


def configure(level: str = "info", secrets: list[str] | None = None) -> None:
    """Send every log record to stderr as JSON (replacing our earlier handler, if any)."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(JsonFormatter(Masker(secrets)))
    root.addHandler(_handler)
    root.setLevel(level.upper())
    # WeasyPrint narrates every render step at info: only its warnings are worth a line.
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
    limiter_log = logging.getLogger("flask-limiter")
    if not any(isinstance(f, _OneLineSwallowed) for f in limiter_log.filters):
        limiter_log.addFilter(_OneLineSwallowed())


class _OneLineSwallowed(logging.Filter):
    """flask-limiter logs each error it swallows (Redis down: requests go through unlimited)
    with its whole traceback, on every request of an outage. Instead: one warning line naming
    the error, at most once a minute per process, saying how many more it swallowed since the
    last line. The outage is plain, and the log is not flooded with it (a busy shop's every
    request, operations probe)."""

    EVERY_SECONDS = 60.0

    def __init__(self):
        super().__init__()
        self._last = None  # when the last line went out (monotonic seconds)
        self._since = 0  # swallowed errors not written since

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.exc_info and record.exc_info[1] is not None):
            return True
        now = time.monotonic()
        if self._last is not None and now - self._last < self.EVERY_SECONDS:
            self._since += 1
            return False
        error = record.exc_info[1]
        first = (str(error).strip().splitlines() or [""])[0][:200]
        more = f"; {self._since} more since the last line" if self._since else ""
        record.msg = (
            f"rate limits not checked, requests let through: the limiter's storage failed "
            f"({type(error).__name__}: {first}{more})"
        )
        record.args = None
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        self._last, self._since = now, 0
        return True


def init_app(app: Flask) -> None:
    """JSON logs for the app, and the request id on every request and answer."""
    configure(app.config["LOG_LEVEL"], secret_values(app.config))
    app.wsgi_app = _with_request_id(app.wsgi_app)


# The request's id is kept in its WSGI environ, where log lines find it.
_REQUEST_ID_KEY = "bikshop.request_id"
_REQUEST_ID_LOWER = REQUEST_ID_HEADER.lower()


def _with_request_id(wsgi_app):
    """The app, with an id for every request: the one in ``X-Request-ID`` (from nginx, say)
    when it is sane, else 128 random bits as 32 hex digits; sent back on the answer.

    Middleware rather than Flask request hooks: the same work without a lookup of Flask's
    request proxy in each of two hooks, and every answer the app makes gets it (an error page
    too). gunicorn's own page for an answer that failed while its body was streamed has none;
    its access line then takes the id the client sent (``GunicornLogger.access``).
    """

    def app(environ, start_response):
        incoming = environ.get(_REQUEST_ID_ENVIRON, "")
        request_id = incoming if _SANE_ID.match(incoming) else secrets.token_hex(16)
        environ[_REQUEST_ID_KEY] = request_id

        def start(status, headers, exc_info=None):
            headers = [h for h in headers if h[0].lower() != _REQUEST_ID_LOWER]
            headers.append((REQUEST_ID_HEADER, request_id))
            return start_response(status, headers, exc_info)

        return wsgi_app(environ, start)

    return app


class GunicornLogger(_GunicornBaseLogger):
    """gunicorn's logger with JSON lines: access lines name route data, never query strings."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        formatter = JsonFormatter(Masker(_secrets_from_env()))
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)
        if not any(isinstance(f, _RequestShownAsPath) for f in self.error_log.filters):
            self.error_log.addFilter(_RequestShownAsPath())

    def access(self, resp, req, environ, request_time) -> None:
        if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.syslog):
            return
        headers = dict((name.lower(), value) for name, value in resp.headers)
        duration = request_time.total_seconds() * 1000
        # The Response gunicorn builds for its own error page (an app that failed after
        # starting its answer, a malformed request) has a status line but no status_code.
        # Its environ has no PATH_INFO either; the parsed request's path has no query string.
        status = getattr(resp, "status_code", None) or _status_code(getattr(resp, "status", ""))
        path = mask_path(environ.get("PATH_INFO") or getattr(req, "path", None))
        self.access_log.info(
            "%s %s %s",
            environ.get("REQUEST_METHOD"),
            path,
            status,
            extra={
                # gunicorn's own error page carries none: then the one the client sent.
                "request_id": headers.get("x-request-id") or _incoming_request_id(req),
                "method": environ.get("REQUEST_METHOD"),
                "path": path,
                "status": status,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(duration, 1),
                "remote": environ.get("REMOTE_ADDR"),
                "user_agent": environ.get("HTTP_USER_AGENT"),
            },
        )


# gunicorn's error-log lines naming a client's request: "Invalid request from ip=...: Invalid HTTP
# request line: 'GET /path?query HTTP/1.1'" (as the client sent it, or its target alone),
# "Invalid HTTP Version: '...'" (what followed a space in the target: a query's rest, as like as
# not) and "Error handling request GET /path?query".
_QUERY_IN_REQUEST = re.compile(r"\?.*?(?=(?: HTTP/[^\s'\"]*)?['\"]?$)")
_NOT_A_VERSION = re.compile(r"(Invalid HTTP Version: (['\"]))(?!HTTP/[^\s'\"]*\2$).*")


class _RequestShownAsPath(logging.Filter):
    """gunicorn's lines naming a request show it as an access line does: the query string cut
    (``?…``), as is a version that is not one, and token-like runs ``[token]``. A malformed
    request line is written as the client sent it, search text and a token under any prefix
    included (privacy probe)."""

    NAMING = ("Invalid request from ip=", "Error handling request ")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(self.NAMING):
            message = _QUERY_IN_REQUEST.sub("?…", _NOT_A_VERSION.sub(r"\1…\2", message), 1)
            record.msg, record.args = mask_path(message), None
        return True


def _incoming_request_id(req) -> str | None:
    """The sane ``X-Request-ID`` a client (nginx) sent with gunicorn's parsed request ``req``:
    for the access line of gunicorn's own error page (an answer that failed while its body was
    streamed), which has no headers of the app's."""
    for name, value in getattr(req, "headers", None) or ():
        if name.lower() == _REQUEST_ID_LOWER:
            return value if _SANE_ID.match(value) else None
    return None


def mask_path(path: str | None) -> str | None:
    """A requested path fit for the access log: every token-like run is ``[token]``."""
    return _TOKEN_IN_PATH.sub("[token]", path) if path else path


def _status_code(status) -> int | None:
    """200 from "200 OK" (or from 200); None when there is none to read."""
    try:
        return int(str(status).split(None, 1)[0])
    except (ValueError, IndexError):
        return None


def _secrets_from_env() -> list[str]:
    import os

    config = {
        name.removeprefix("BIKSHOP_"): value
        for name, value in os.environ.items()
        if name.startswith("BIKSHOP_")
    }
    return secret_values(config)
