"""A CSV export longer than gunicorn's worker timeout, through real gunicorn, arrives whole:
the stream checks in with the arbiter as it goes (``bikshop/heartbeat.py``), so the worker
is not killed halfway. SQLite alone: the mechanism is gunicorn's, not the database's."""

from __future__ import annotations

import csv
import io
import time

import pytest
import requests

from bench.common import Settings
from bench.seed import seed_orders
from bikshop import create_app
from bikshop.database import dispose_engines
from tests.admin_support import OWNER, PASSWORD, add_admin, csrf_token
from tests.conftest import BASE_CONFIG

pytestmark = [pytest.mark.sqlite_only, pytest.mark.slow]

ORDERS = 200_000  # about 3.3 s to export on a quiet machine: several worker timeouts
WORKER_TIMEOUT = 1  # seconds: gunicorn's --timeout (BIKSHOP_TIMEOUT starts at 10)


def test_an_export_longer_than_the_worker_timeout_arrives_whole(database_url, gunicorn):
    seed_orders(Settings(database_url, "export-token-0123456789"), ORDERS, say=lambda _: None)
    app = create_app({**BASE_CONFIG, "DATABASE_URL": database_url})
    add_admin(app)
    with app.app_context():
        dispose_engines()
    server = gunicorn(
        workers=1,
        env={"BIKSHOP_INSECURE_COOKIES": "1", "BIKSHOP_RATELIMIT_ENABLED": "0"},
        extra_args=("--timeout", str(WORKER_TIMEOUT)),
    )
    session = requests.Session()
    session.trust_env = False
    login = session.get(server.url + "/admin/login", timeout=10)
    signed_in = session.post(
        server.url + "/admin/login",
        data={"csrf_token": csrf_token(login.text), "email": OWNER, "password": PASSWORD},
        timeout=10,
    )
    assert signed_in.status_code == 200 and "Sign out" in signed_in.text

    started = time.monotonic()
    with session.get(server.url + "/admin/orders.csv", stream=True, timeout=120) as answer:
        assert answer.status_code == 200
        try:
            body = b"".join(answer.iter_content(1 << 16))
        except requests.exceptions.ChunkedEncodingError as cut:
            pytest.fail(f"the export was cut off after {time.monotonic() - started:.1f} s: {cut}")
    took = time.monotonic() - started

    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert len(rows) == ORDERS
    # Otherwise the test proves nothing: the export must outlast the timeout several times.
    assert took > 2 * WORKER_TIMEOUT, f"the export took only {took:.1f} s"
    log = server.log_path.read_text()
    assert "WORKER TIMEOUT" not in log
