"""Helpers for the reliability tests: Bik-like load, integrity checks, a private PostgreSQL."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from tests.bik import sample_body
from tests.servers import free_port


@dataclass
class Outcome:
    """One draft as Bik saw it: the body, the final status and what failed attempts returned."""

    body: dict
    status: int | None = None
    answer: dict | None = None
    failures: list[int | None] = field(default_factory=list)


@dataclass
class Load:
    """placeOrder from ``threads`` Bik-like clients against ``urls`` (round robin) until stopped.

    Like Bik, a client retries a draft that got no answer or a 5xx (after a short pause) until
    it is answered, so every draft ends with a final status.
    """

    urls: list[str]
    threads: int = 6
    retry_for: float = 40.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for number in range(self.threads):
            worker = threading.Thread(target=self._run, args=(number,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.retry_for + 20)

    def _run(self, number: int) -> None:
        session = requests.Session()
        sent = 0
        while not self._stop.is_set():
            url = self.urls[(number + sent) % len(self.urls)]
            sent += 1
            outcome = Outcome(sample_body())
            give_up = time.monotonic() + self.retry_for
            while True:
                answer = post(session, url + "/bik/placeOrder", outcome.body)
                status = None if answer is None else answer.status_code
                if status is not None and status < 500:
                    outcome.status, outcome.answer = status, answer.json()
                    break
                outcome.failures.append(status)
                if time.monotonic() > give_up:
                    break
                time.sleep(0.2)
                session = requests.Session()
            with self._lock:
                self.outcomes.append(outcome)

    def by_status(self) -> Counter:
        return Counter(o.status for o in self.outcomes)

    def failures(self) -> Counter:
        return Counter(f for o in self.outcomes for f in o.failures)


def post(session: requests.Session, url: str, body: dict) -> requests.Response | None:
    """One request; a refused or cut connection (a killed worker, a restart) is None."""
    try:
        return session.post(url, json=body, timeout=15)
    except requests.RequestException:
        return None


def assert_placed_orders_intact(url: str, outcomes: list[Outcome]) -> int:
    """Every order Bik got a 200 for comes back from getOrder with all its items."""
    confirmed = [o for o in outcomes if o.status == 200]
    local = threading.local()

    def check(outcome: Outcome) -> None:
        session = local.__dict__.setdefault("session", requests.Session())
        order_id = outcome.answer["order"]["id"]
        answer = session.post(url + "/bik/getOrder", json={"orderId": order_id}, timeout=15)
        assert answer.status_code == 200, (order_id, answer.text)
        order = answer.json()["order"]
        sent = outcome.body["order"]
        assert [_item(i) for i in order["items"]] == [_item(i) for i in sent["items"]], order_id
        assert order["total"] == sent["total"]

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(check, confirmed))
    return len(confirmed)


def _item(item: dict) -> tuple:
    return item["productId"], item["variantId"], item["quantity"], item["price"]


def assert_no_orphans_or_duplicates(database_url: str) -> dict:
    """No item or timeline row without its order, no order without items, no repeated number."""
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    queries = {
        "orphan items": "SELECT count(*) FROM order_items i LEFT JOIN orders o "
        "ON o.id = i.order_id WHERE o.id IS NULL",
        "orphan events": "SELECT count(*) FROM order_events e LEFT JOIN orders o "
        "ON o.id = e.order_id WHERE o.id IS NULL",
        "orders without items": "SELECT count(*) FROM orders o WHERE NOT EXISTS "
        "(SELECT 1 FROM order_items i WHERE i.order_id = o.id)",
        "orders without a placed event": "SELECT count(*) FROM orders o WHERE NOT EXISTS "
        "(SELECT 1 FROM order_events e WHERE e.order_id = o.id AND e.kind = 'placed')",
        "duplicate numbers": "SELECT count(*) FROM (SELECT number FROM orders GROUP BY number "
        "HAVING count(*) > 1) d",
        "duplicate drafts": "SELECT count(*) FROM (SELECT draft_order_id FROM orders "
        "GROUP BY draft_order_id HAVING count(*) > 1) d",
    }
    with engine.connect() as conn:
        found = {name: conn.execute(text(sql)).scalar_one() for name, sql in queries.items()}
        orders = conn.execute(text("SELECT count(*) FROM orders")).scalar_one()
    engine.dispose()
    assert not any(found.values()), found
    return {"orders": orders}


def stored_drafts(database_url: str) -> set[str]:
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        drafts = set(conn.execute(text("SELECT draft_order_id FROM orders")).scalars())
    engine.dispose()
    return drafts


# --- a private PostgreSQL cluster, ours to stop and start ------------------------------------

PG_BIN = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1])


class PrivateCluster:
    """initdb + pg_ctl in a temporary folder on a free port, run as the ``postgres`` user.

    The shared server on 5432 is never touched: this cluster is the one the tests stop.
    """

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="bikshop-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        shutil.chown(self.dir, "postgres", "postgres")

    def _as_postgres(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, check=check
        )

    def init(self) -> None:
        self._as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(statement)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._as_postgres(
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
                check=False,
            )
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_until(predicate, timeout: float = 20, every: float = 0.2):
    """Poll ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"not true within {timeout}s: {predicate}")


def crashing_app():
    """The production app plus one route that fails with secrets in its error (for gunicorn).

    gunicorn loads it as ``tests.faults:crashing_app()``; everything else is the real app.
    """
    import os

    from bikshop import create_app

    app = create_app()

    @app.get("/crash")
    def crash():
        secret = os.environ["BIKSHOP_RAZORPAY_WEBHOOK_SECRET"]
        raise RuntimeError(f"boom for +91 98765 43210 asha@example.com with {secret}")

    @app.get("/crash-mid-stream")
    def crash_mid_stream():
        def rows():
            raise RuntimeError("the stream broke before its first line")
            yield "never"

        return app.response_class(rows(), mimetype="text/plain")

    return app
