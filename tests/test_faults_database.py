"""The database goes away, turns read-only or fills up: a clear 503, nothing half written,
and service comes back by itself when the database does."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.bik import sample_body
from tests.conftest import BASE_CONFIG, _migrate
from tests.faults import (
    Load,
    PrivateCluster,
    assert_no_orphans_or_duplicates,
    assert_placed_orders_intact,
    stored_drafts,
    wait_until,
)
from tests.servers import GunicornServer

pytestmark = pytest.mark.slow


def _env(database_url: str) -> dict:
    settings = {f"BIKSHOP_{k}": str(v) for k, v in BASE_CONFIG.items() if k != "TESTING"}
    return {**settings, "BIKSHOP_DATABASE_URL": database_url}


def _assert_unavailable(answer: requests.Response) -> None:
    """A 503 in the one JSON error shape, with a retry hint and no trace."""
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "service_unavailable"
    assert "nothing was changed" in error["message"]
    assert answer.headers["Retry-After"]
    assert "Traceback" not in answer.text


def _place(url: str, body: dict | None = None) -> requests.Response:
    return requests.post(url + "/bik/placeOrder", json=body or sample_body(), timeout=20)


@pytest.fixture(scope="module")
def private_pg():
    """Our own PostgreSQL cluster (never the shared one), with a migrated database."""
    cluster = PrivateCluster()
    try:
        cluster.init()
        cluster.sql("CREATE DATABASE bikshop")
        _migrate(cluster.url("bikshop"))
        yield cluster
    finally:
        cluster.destroy()


def _pg_server(private_pg, tmp_path, workers: int):
    private_pg.sql("TRUNCATE orders, order_items, order_events, counters CASCADE", "bikshop")
    server = GunicornServer(workers=workers, env=_env(private_pg.url("bikshop")), log_dir=tmp_path)
    server.start()
    return server


@pytest.fixture
def pg_server(private_pg, tmp_path):
    server = _pg_server(private_pg, tmp_path, workers=2)
    yield server
    server.stop()


@pytest.fixture
def pg_one_worker(private_pg, tmp_path):
    """One worker: which connection each request gets is then known, not up to the kernel."""
    server = _pg_server(private_pg, tmp_path, workers=1)
    yield server
    server.stop()


def test_postgresql_stopped_and_started_under_load(private_pg, pg_server):
    url = private_pg.url("bikshop")
    with Load([pg_server.url], threads=4) as load:
        time.sleep(1)
        private_pg.stop()
        _assert_unavailable(_place(pg_server.url))
        _assert_unavailable(requests.post(pg_server.url + "/bik/getOrder", json={"orderId": "x"}))
        assert requests.get(pg_server.url + "/readyz").status_code == 503
        time.sleep(1)
        private_pg.start()
        # Back without restarting bikshop: the pool replaces its dead connections.
        wait_until(lambda: _place(pg_server.url).status_code == 200)
        time.sleep(1)
    assert load.by_status() == {200: len(load.outcomes)}, load.by_status()
    assert 503 in load.failures() and set(load.failures()) <= {503}, load.failures()
    assert_placed_orders_intact(pg_server.url, load.outcomes)
    assert_no_orphans_or_duplicates(url)
    assert "Traceback" not in pg_server.log()


def test_postgresql_read_only_refuses_writes_with_503_and_keeps_reads(private_pg, pg_server):
    placed = _place(pg_server.url).json()["order"]["id"]
    private_pg.sql("ALTER SYSTEM SET default_transaction_read_only = on")
    private_pg.sql("SELECT pg_reload_conf()")
    try:
        body = sample_body()
        wait_until(lambda: _place(pg_server.url, body).status_code == 503)
        _assert_unavailable(_place(pg_server.url, body))
        got = requests.post(pg_server.url + "/bik/getOrder", json={"orderId": placed})
        assert got.status_code == 200  # Bik can still read its orders
    finally:
        private_pg.sql("ALTER SYSTEM RESET default_transaction_read_only")
        private_pg.sql("SELECT pg_reload_conf()")
    assert body["draftOrderId"] not in stored_drafts(private_pg.url("bikshop"))
    wait_until(lambda: _place(pg_server.url, body).status_code == 200)
    assert_no_orphans_or_duplicates(private_pg.url("bikshop"))


def test_connections_opened_while_read_only_are_replaced_once_writable(private_pg, pg_one_worker):
    """``ALTER DATABASE ... SET default_transaction_read_only`` (or a standby promoted late)
    fixes each session's mode when it connects: the connections the pools open meanwhile stay
    read-only after the database is writable again, unless bikshop replaces them."""
    placed = _place(pg_one_worker.url).json()["order"]["id"]
    private_pg.sql("ALTER DATABASE bikshop SET default_transaction_read_only = on")
    private_pg.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = 'bikshop' AND pid <> pg_backend_pid()"
    )
    try:
        wait_until(lambda: _place(pg_one_worker.url).status_code == 503)
        # A terminated connection fails once (a 503) before its pool replaces it.
        get_order = {"json": {"orderId": placed}, "timeout": 20}
        wait_until(lambda: requests.post(pg_one_worker.url + "/bik/getOrder", **get_order).ok)
        for _ in range(6):  # every worker's pools now hold read-only connections
            _assert_unavailable(_place(pg_one_worker.url))
            get = requests.post(pg_one_worker.url + "/bik/getOrder", **get_order)
            assert get.status_code == 200  # Bik can still read its orders
    finally:
        private_pg.sql("ALTER DATABASE bikshop RESET default_transaction_read_only")
    # No backend is terminated this time: bikshop itself must drop the read-only connections.
    answers = [_place(pg_one_worker.url).status_code for _ in range(8)]
    assert answers[-4:] == [200] * 4, answers
    assert set(answers) <= {200, 503}, answers
    assert_no_orphans_or_duplicates(private_pg.url("bikshop"))


def _readyz(server) -> tuple[int, dict]:
    answer = requests.get(server.url + "/readyz", timeout=20)
    return answer.status_code, answer.json()


def test_readyz_is_503_while_postgresql_is_read_only(private_pg, pg_one_worker):
    """A load balancer must not send Bik to a server whose every placeOrder would be a 503."""
    assert _readyz(pg_one_worker)[0] == 200
    private_pg.sql("ALTER SYSTEM SET default_transaction_read_only = on")
    private_pg.sql("SELECT pg_reload_conf()")
    try:
        wait_until(lambda: _readyz(pg_one_worker)[0] == 503)
        assert _readyz(pg_one_worker) == (503, {"status": "unavailable", "database": "read-only"})
        _assert_unavailable(_place(pg_one_worker.url))
    finally:
        private_pg.sql("ALTER SYSTEM RESET default_transaction_read_only")
        private_pg.sql("SELECT pg_reload_conf()")
    wait_until(lambda: _readyz(pg_one_worker)[0] == 200)


def test_readyz_recovers_from_connections_opened_while_read_only(private_pg, pg_one_worker):
    """The probe's own connection, opened while new sessions were read-only, is not kept: once
    the database is writable the next probe says so (and placeOrder agrees)."""
    private_pg.sql("ALTER DATABASE bikshop SET default_transaction_read_only = on")
    private_pg.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = 'bikshop' AND pid <> pg_backend_pid()"
    )
    try:
        wait_until(lambda: _readyz(pg_one_worker)[1].get("database") == "read-only")
    finally:
        private_pg.sql("ALTER DATABASE bikshop RESET default_transaction_read_only")
    assert _readyz(pg_one_worker)[0] == 200
    wait_until(lambda: _place(pg_one_worker.url).status_code == 200)
    assert _readyz(pg_one_worker)[0] == 200


def test_readyz_is_503_while_the_sqlite_file_is_read_only(tmp_path):
    """The file read-only to bikshop (a read-only mount here; a restore copied in as root,
    or a disk the kernel remounted read-only, in life): every order would be a 503."""
    database = tmp_path / "bikshop.sqlite3"
    url = f"sqlite:///{database}"
    _migrate(url)
    # A read-only bind mount of the file over itself: read-only even for root.
    subprocess.run(["mount", "--bind", str(database), str(database)], check=True)
    mounted = True
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(database)], check=True)
        server = GunicornServer(workers=1, env=_env(url), log_dir=tmp_path)
        server.start()
        try:
            assert _readyz(server) == (503, {"status": "unavailable", "database": "read-only"})
            _assert_unavailable(_place(server.url))
            # The log says why, in the driver's words.
            reason = "attempt to write a readonly database"
            assert reason in server.log_once_it_has(reason)
            subprocess.run(["umount", "-l", str(database)], check=True)  # open files keep it
            mounted = False
            # Writable again: the probe says so at once, and placeOrder stores again, without a
            # restart (the worker's connection, opened read-only, is replaced).
            assert _readyz(server)[0] == 200
            placed = _place(server.url)
            assert placed.status_code == 200, placed.text
            order_id = placed.json()["order"]["id"]
            with contextlib.closing(sqlite3.connect(database)) as stored:
                assert stored.execute(
                    "SELECT count(*) FROM orders WHERE public_id = ?", (order_id,)
                ).fetchone() == (1,)
            assert "Traceback" not in server.log()
        finally:
            server.stop()
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(database)], check=False)


@contextlib.contextmanager
def tiny_disk(path, size="3m"):
    """A tmpfs of ``size`` at ``path`` (we run as root, as CI does)."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path) -> None:
    with open(path / "filler", "wb") as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()


def test_sqlite_disk_full_gives_503_writes_nothing_and_heals(tmp_path):
    with tiny_disk(tmp_path / "disk") as disk:
        url = f"sqlite:///{disk / 'bikshop.sqlite3'}"
        _migrate(url)
        server = GunicornServer(workers=2, env=_env(url), log_dir=tmp_path)
        server.start()
        try:
            before = _place(server.url).json()["order"]["id"]
            _fill(disk)
            full = [sample_body() for _ in range(3)]
            for body in full:
                _assert_unavailable(_place(server.url, body))
            (disk / "filler").unlink()
            assert _place(server.url).status_code == 200  # space again: no restart needed

            got = requests.post(server.url + "/bik/getOrder", json={"orderId": before})
            assert got.status_code == 200
        finally:
            server.stop()
        drafts = stored_drafts(url)
        assert not drafts & {b["draftOrderId"] for b in [*full]}
        assert_no_orphans_or_duplicates(url)
        check = sqlite3.connect(disk / "bikshop.sqlite3")
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        check.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_instances_on_one_postgresql_make_one_order_per_draft(gunicorn, database_url):
    first, second = gunicorn(workers=2), gunicorn(workers=2)
    drafts = [sample_body() for _ in range(40)]
    with ThreadPoolExecutor(8) as pool, Load([first.url, second.url], threads=2) as load:
        # Each draft reaches both instances at the same moment, as a Bik retry might.
        answers = list(
            pool.map(
                lambda job: _place(*job), [(s.url, b) for b in drafts for s in (first, second)]
            )
        )
    assert [a.status_code for a in answers] == [200] * len(answers)
    for a, b in zip(answers[::2], answers[1::2], strict=True):
        assert a.json()["order"]["id"] == b.json()["order"]["id"]
    assert load.by_status() == {200: len(load.outcomes)}
    assert_no_orphans_or_duplicates(database_url)
    expected = {b["draftOrderId"] for b in drafts} | {o.body["draftOrderId"] for o in load.outcomes}
    assert stored_drafts(database_url) == expected
    numbers = [a.json()["order"]["id"] for a in answers[::2]]
    assert len(set(numbers)) == len(drafts)


def test_invoices_after_postgresql_dropped_its_connections_are_never_a_500(
    private_pg, pg_one_worker
):
    """A restart, failover or idle-killer drops the pooled connections. The invoice's rate
    limit looks the token up first, and flask-limiter swallows its errors: that lookup's failed
    session must not make the page's own lookup a 500. Each answer is the page or a 503."""
    invoice = _place(pg_one_worker.url).json()["order"]["invoiceUrl"]
    path = "/invoice/" + invoice.rsplit("/invoice/", 1)[1]
    statuses = []
    for _ in range(3):
        for suffix in ("", ".pdf", ""):  # warm the pools, then drop every connection
            assert requests.get(pg_one_worker.url + path + suffix, timeout=30).status_code == 200
        private_pg.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = 'bikshop' AND pid <> pg_backend_pid()"
        )
        for suffix in ("", ".pdf", "", ".pdf"):
            answer = requests.get(pg_one_worker.url + path + suffix, timeout=30)
            statuses.append(answer.status_code)
            assert answer.status_code in (200, 503), (statuses, answer.text[:300])
    assert statuses[-1] == 200


class _Browser(requests.Session):
    """A requests session on one server, with the test client's ``get``/``post`` by path."""

    def __init__(self, base_url: str):
        super().__init__()
        self.base_url = base_url

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 30)
        return super().request(method, self.base_url + url, *args, **kwargs)


def test_a_signed_in_dashboard_gets_the_503_page_while_postgresql_is_down(private_pg, tmp_path):
    """The owner's browser carries a sign-in: the error page's own rendering loaded the owner
    from the database again (Flask-Login's template context), failed inside the error handler,
    and gunicorn answered its bare "Internal Server Error" (operations probe)."""
    from bikshop import create_app
    from bikshop.database import dispose_engines
    from tests.admin_support import add_admin, sign_in

    url = private_pg.url("bikshop")
    app = create_app({**BASE_CONFIG, "DATABASE_URL": url})
    add_admin(app, email="outage@example.com")
    with app.app_context():
        dispose_engines()
    env = _env(url) | {"BIKSHOP_INSECURE_COOKIES": "1", "BIKSHOP_RATELIMIT_ENABLED": "0"}
    server = GunicornServer(workers=1, env=env, log_dir=tmp_path)
    server.start()
    try:
        browser = _Browser(server.url)
        assert sign_in(browser, email="outage@example.com").status_code in (302, 303)
        assert browser.get("/admin/").status_code == 200
        private_pg.stop()
        try:
            for _ in range(2):  # the pooled connection's failure, then a new one refused
                page = browser.get("/admin/")
                assert page.status_code == 503, page.text[:300]
                assert "Temporarily unavailable" in page.text and page.headers["Retry-After"]
        finally:
            private_pg.start()
        wait_until(lambda: browser.get("/admin/").status_code == 200)
    finally:
        server.stop()
    assert "Traceback" not in server.log()
