"""Prometheus metrics: requests by route and status, latency, orders, payments, webhook failures.

Under gunicorn every worker writes its numbers to files in ``PROMETHEUS_MULTIPROC_DIR``
(``gunicorn.conf.py`` sets it before the app is imported) and ``/metrics`` adds them up, so a
scrape sees the whole server whichever worker answers, and a killed worker's counts survive.
``/metrics`` answers only with ``Authorization: Bearer <BIKSHOP_METRICS_TOKEN>``; without that
setting it does not exist (404).
"""

from __future__ import annotations

import os
import time

from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.orm import Session

from bikshop.bik.auth import AuthSpec, is_authorized
from bikshop.errors import ApiError

# Multiprocess mode writes each metric's file as the metric is made, below. The folder is made
# here too: gunicorn.conf.py makes it for a server, but the unit's `flask db upgrade` runs
# before gunicorn, in a fresh /run/bikshop whose metrics folder does not exist yet.
if _folder := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(_folder, exist_ok=True)

REQUESTS = Counter(
    "bikshop_http_requests_total", "HTTP answers by route and status", ["method", "route", "status"]
)
LATENCY = Histogram(
    "bikshop_http_request_duration_seconds",
    "Time to answer, by route",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ORDERS_PLACED = Counter("bikshop_orders_placed_total", "Orders stored (committed)")
PAYMENTS_CONFIRMED = Counter(
    "bikshop_payments_confirmed_total", "Payments recorded (committed)", ["kind"]
)
WEBHOOK_FAILURES = Counter(
    "bikshop_webhook_failures_total", "Webhook deliveries answered with an error", ["status"]
)

bp = Blueprint("metrics", __name__)


def init_app(app: Flask) -> None:
    """Time and count every request; serve ``/metrics``."""
    app.before_request(_start_timer)
    app.after_request(_observe)
    app.register_blueprint(bp)


_STARTED = "bikshop.metrics_started"  # in the request's WSGI environ


def _start_timer() -> None:
    request._get_current_object().environ[_STARTED] = time.perf_counter()


def _observe(response):
    # The request itself, once: each ``request.x`` looks the request up again.
    current = request._get_current_object()
    # The URL rule, never the path: a path holds invoice tokens and would explode the series.
    rule = current.url_rule
    route = rule.rule if rule is not None else "<unmatched>"
    status = response.status_code
    method = current.method
    counter, latency = _series(method if method in _METHODS else "other", route, status)
    counter.inc()
    started = current.environ.get(_STARTED)
    if started is not None:
        latency.observe(time.perf_counter() - started)
    if status >= 400 and current.path.startswith("/webhooks/"):
        WEBHOOK_FAILURES.labels(str(status)).inc()
    return response


# Any token is a valid method to gunicorn: others are counted together, not one series each.
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
_SERIES: dict[tuple[str, str, int], tuple] = {}


def _series(method: str, route: str, status: int) -> tuple:
    """The request counter and latency histogram for these labels, looked up once: routes,
    methods and statuses are few, and ``labels()`` costs more than the increment."""
    key = (method, route, status)
    found = _SERIES.get(key)
    if found is None:
        found = REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route)
        _SERIES[key] = found
    return found


@bp.get("/metrics")
def metrics():
    """The Prometheus text exposition, for a scraper holding the metrics token."""
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        raise ApiError(404, "Metrics are off: set BIKSHOP_METRICS_TOKEN to turn them on")
    # Bik's own bearer check: the scheme's word in any case (RFC 9110), constant time.
    if not is_authorized(AuthSpec("bearer", token=token), request.headers):
        raise ApiError(401, "Missing or invalid credentials")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY as registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


# Business counters follow commits, not calls: a placeOrder that loses the draft race or a
# webhook whose transaction rolls back must not count. The session notes what it flushed and
# the numbers move only when that transaction commits.
_PENDING = "bikshop.metrics.pending"


@event.listens_for(Session, "after_flush")
def _note_flushed(session, flush_context) -> None:
    from bikshop.models import Order, Payment

    pending = session.info.setdefault(_PENDING, [])
    for row in session.new:
        if isinstance(row, Order):
            pending.append(("order", None))
        elif isinstance(row, Payment):
            pending.append(("payment", "online" if row.razorpay_payment_id else "offline"))


def count_committed(kind: str, label: str | None = None) -> None:
    """Count an ``order``, or a ``payment`` (``label``: online/offline), already committed."""
    if kind == "order":
        ORDERS_PLACED.inc()
    else:
        PAYMENTS_CONFIRMED.labels(label).inc()


@event.listens_for(Session, "after_commit")
def _count_committed(session) -> None:
    for kind, label in session.info.pop(_PENDING, []):
        count_committed(kind, label)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session) -> None:
    session.info.pop(_PENDING, None)
