"""placeOrder under real concurrency: gunicorn with 4 workers, on SQLite and PostgreSQL.

Bik delivers at least once: duplicates may arrive together, or a retry may arrive while the first
request (which Bik gave up on) is still running. Either way there is exactly one order, and order
numbers stay unique and gapless.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests
from sqlalchemy import create_engine, text

from bikshop.database import ORDERS_PER_CHECKPOINT
from tests.bik import sample_body
from tests.conftest import BASE_CONFIG, empty_database
from tests.servers import GunicornServer

WORKERS = 4
CONCURRENT = 50


@pytest.fixture(scope="module")
def server(database_url, tmp_path_factory):
    """One real gunicorn with 4 workers per backend, shared by this module's tests."""
    empty_database(database_url)
    env = {f"BIKSHOP_{k}": str(v) for k, v in BASE_CONFIG.items() if k != "TESTING"}
    env["BIKSHOP_DATABASE_URL"] = database_url
    gunicorn = GunicornServer(workers=WORKERS, env=env, log_dir=tmp_path_factory.mktemp("gunicorn"))
    gunicorn.start()
    try:
        deadline = time.monotonic() + 20
        while len(gunicorn.worker_pids()) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.05)  # start() returns when the first worker answers
        assert len(gunicorn.worker_pids()) == WORKERS
        yield gunicorn
    finally:
        gunicorn.stop()
    assert "Traceback" not in gunicorn.log()


@pytest.fixture(scope="module")
def database(database_url):
    """Read what the server stored, straight from the database."""
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    yield engine
    engine.dispose()


def post_together(url: str, bodies: list[dict]) -> list[requests.Response]:
    """POST every body at once: one thread and one requests.Session each, released together."""
    local = threading.local()
    start = threading.Barrier(len(bodies))

    def send(body):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        start.wait()
        return local.session.post(url, json=body, timeout=60)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(send, bodies))


def rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def counter(engine) -> int | None:
    found = rows(engine, "SELECT value FROM counters WHERE name = 'order'")
    return found[0][0] if found else None


def test_concurrent_identical_requests_create_exactly_one_order(server, database):
    body = sample_body()
    before = counter(database)
    responses = post_together(f"{server.url}/bik/placeOrder", [body] * CONCURRENT)
    assert [r.status_code for r in responses] == [200] * CONCURRENT
    ids = {r.json()["order"]["id"] for r in responses}
    assert len(ids) == 1
    replayed = [r.headers.get("Idempotent-Replayed") for r in responses]
    assert replayed.count(None) == 1 and replayed.count("true") == CONCURRENT - 1
    stored = rows(
        database,
        "SELECT id, public_id FROM orders WHERE draft_order_id = :draft",
        draft=body["draftOrderId"],
    )
    assert [public_id for _, public_id in stored] == list(ids)
    order_id = stored[0][0]
    assert rows(database, "SELECT kind FROM order_events WHERE order_id = :o", o=order_id) == [
        ("placed",)
    ]
    assert len(rows(database, "SELECT id FROM order_items WHERE order_id = :o", o=order_id)) == 1
    # The 49 losers rolled back their counter step: the next number is the very next one.
    assert counter(database) == (before or 1000) + 1


def test_concurrent_distinct_orders_get_distinct_gapless_numbers(server, database):
    bodies = []
    for n in range(CONCURRENT):
        lines = [
            {
                "productId": 1000 + n,
                "variantId": 2000 + line,
                "name": f"draft {n} line {line}",
                "quantity": line + 1,
                "price": 10,
            }
            for line in range(n % 3 + 1)
        ]
        sub_total = sum(item["price"] * item["quantity"] for item in lines)
        discount = 100 if sub_total >= 51 else 0
        total = sub_total + 49 - discount
        bodies.append(sample_body(items=lines, subTotal=sub_total, discount=discount, total=total))
    before = counter(database) or 1000
    responses = post_together(f"{server.url}/bik/placeOrder", bodies)
    assert [r.status_code for r in responses] == [200] * CONCURRENT
    numbers = sorted(int(r.json()["order"]["name"].lstrip("#")) for r in responses)
    assert numbers == list(range(before + 1, before + CONCURRENT + 1))
    assert counter(database) == before + CONCURRENT
    for body, response in zip(bodies, responses, strict=True):
        answered = response.json()["order"]
        assert answered["id"] == f"ORD-{answered['name'][1:]}"
        assert answered["partnersData"]["id"] == body["draftOrderId"]
        stored_items = rows(
            database,
            "SELECT i.name, i.quantity FROM order_items i JOIN orders o ON o.id = i.order_id "
            "WHERE o.draft_order_id = :draft ORDER BY i.position",
            draft=body["draftOrderId"],
        )
        assert stored_items == [(i["name"], i["quantity"]) for i in body["order"]["items"]]


class HeldWriteLock:
    """Hold the database's write path, as a slow first request would, until released."""

    def __init__(self, database_url: str):
        if database_url.startswith("sqlite"):
            self.conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            self.conn = psycopg.connect(database_url)
            self.conn.execute("LOCK TABLE orders IN EXCLUSIVE MODE")  # reads pass, inserts wait

        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.conn.rollback()
            self.conn.close()


def test_a_retry_while_the_first_request_still_runs_gets_the_same_order(
    server, database, database_url
):
    body = sample_body()
    url = f"{server.url}/bik/placeOrder"
    lock = HeldWriteLock(database_url)
    try:
        # Bik's first attempt: the server is stuck behind the lock, Bik's client gives up.
        with pytest.raises(requests.ReadTimeout):
            requests.post(url, json=body, timeout=1)
        # Bik retries while the first request is still running on the server.
        with ThreadPoolExecutor(max_workers=1) as pool:
            retry = pool.submit(requests.post, url, json=body, timeout=60)
            time.sleep(0.5)
            assert not retry.done()
            lock.release()
            response = retry.result()
    finally:
        lock.release()
    assert response.status_code == 200, response.text
    stored = rows(
        database,
        "SELECT id, public_id FROM orders WHERE draft_order_id = :draft",
        draft=body["draftOrderId"],
    )
    assert [public_id for _, public_id in stored] == [response.json()["order"]["id"]]
    # The abandoned first request finishes on the server too, without a second order.
    time.sleep(0.5)
    events = rows(database, "SELECT kind FROM order_events WHERE order_id = :o", o=stored[0][0])
    assert events == [("placed",)]
    again = requests.post(url, json=body, timeout=10)
    assert again.status_code == 200 and again.json()["order"]["id"] == stored[0][1]


@pytest.mark.sqlite_only
def test_sqlite_writers_take_turns_on_the_writer_lock(server, database, database_url):
    """Workers queue on ``<database>-writer.lock`` (bikshop.database.sqlite_writer) rather than
    sleeping in SQLite's busy handler: one held by someone else holds placeOrder back, and its
    release lets the order through at once."""
    lock_path = database_url.removeprefix("sqlite:///") + "-writer.lock"
    body = sample_body()
    with open(lock_path, "a+b") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            with ThreadPoolExecutor(max_workers=1) as pool:
                placed = pool.submit(
                    requests.post, f"{server.url}/bik/placeOrder", json=body, timeout=60
                )
                time.sleep(0.8)
                assert not placed.done()
                waited_from = time.monotonic()
                fcntl.flock(lock_file, fcntl.LOCK_UN)
                response = placed.result()
                waited = time.monotonic() - waited_from
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    assert response.status_code == 200, response.text
    assert waited < 0.5, f"placeOrder took {waited:.2f} s after the lock was released"
    stored = rows(
        database, "SELECT public_id FROM orders WHERE draft_order_id = :d", d=body["draftOrderId"]
    )
    assert stored == [(response.json()["order"]["id"],)]


@pytest.mark.sqlite_only
def test_sqlite_checkpoints_after_answering_every_40th_order(server, database_url):
    """The WAL is copied into the database file after the answer to every 40th order (by
    number), outside the writer lock, and not in between (SQLite's own checkpoint waits for
    4,000 pages)."""
    database_file = Path(database_url.removeprefix("sqlite:///"))
    session = requests.Session()

    def place() -> int:
        response = session.post(f"{server.url}/bik/placeOrder", json=sample_body(), timeout=30)
        assert response.status_code == 200, response.text
        return int(response.json()["order"]["name"].lstrip("#"))

    def settled_digest() -> str:
        """The database file's hash once it has stopped changing (a checkpoint has landed)."""
        digest = None
        while True:
            time.sleep(0.3)
            latest = hashlib.sha256(database_file.read_bytes()).hexdigest()
            if latest == digest:
                return digest
            digest = latest

    while place() % ORDERS_PER_CHECKPOINT:
        pass
    checkpointed = settled_digest()
    for _ in range(ORDERS_PER_CHECKPOINT - 1):
        place()
    time.sleep(0.5)
    assert hashlib.sha256(database_file.read_bytes()).hexdigest() == checkpointed
    assert place() % ORDERS_PER_CHECKPOINT == 0
    assert settled_digest() != checkpointed


def test_an_oversized_chunked_body_is_refused_by_the_real_server(server, database):
    before = rows(database, "SELECT COUNT(*) FROM orders")

    def chunks():
        yield b'{"draftOrderId": "nb_big", "paymentPending": true, "order": {"note": "'
        for _ in range(40):
            yield b"x" * 32768
        yield b'"}}'

    response = requests.post(
        f"{server.url}/bik/placeOrder",
        data=chunks(),  # no Content-Length: Transfer-Encoding: chunked
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert rows(database, "SELECT COUNT(*) FROM orders") == before


def test_a_chunked_body_of_exactly_the_limit_is_placed(server, database):
    """1 MiB is the limit, not one byte past it, with or without a Content-Length."""

    def padded_to(size: int) -> tuple[str, bytes]:
        body = sample_body()
        body["order"]["note"] = ""
        body["order"]["note"] = "x" * (size - len(json.dumps(body)))
        raw = json.dumps(body).encode()
        assert len(raw) == size
        return body["draftOrderId"], raw

    def chunked(raw: bytes):
        for start in range(0, len(raw), 65536):
            yield raw[start : start + 65536]

    stored = "SELECT COUNT(*) FROM orders WHERE draft_order_id = :d"
    for size, status, count in [(1024 * 1024, 200, 1), (1024 * 1024 + 1, 413, 0)]:
        draft, raw = padded_to(size)
        response = requests.post(
            f"{server.url}/bik/placeOrder",
            data=chunked(raw),  # no Content-Length: Transfer-Encoding: chunked
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == status, (size, response.text)
        assert rows(database, stored, d=draft) == [(count,)]


def test_a_body_shorter_than_its_content_length_is_a_400_and_stores_nothing(server, database):
    """The client closed its side before sending all it announced: what arrived may parse as
    JSON, but it is not the order Bik sent."""
    body = sample_body()
    raw = json.dumps(body).encode()
    head = "\r\n".join(
        [
            "POST /bik/placeOrder HTTP/1.1",
            "Host: 127.0.0.1",
            "Content-Type: application/json",
            f"Content-Length: {len(raw) + 10}",
        ]
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(head.encode() + b"\r\n\r\n" + raw)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
    assert "before the whole body arrived" in error["message"], error
    stored = "SELECT COUNT(*) FROM orders WHERE draft_order_id = :d"
    assert rows(database, stored, d=body["draftOrderId"]) == [(0,)]


def raw_post(server: GunicornServer, path: str, head: list[str], body: bytes) -> tuple[int, bytes]:
    """An HTTP/1.1 request written by hand (for framing no client library sends)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *head]
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("path", ["/bik/placeOrder", "/webhooks/razorpay"])
def test_a_malformed_chunked_body_is_a_400_not_a_500(server, database, path):
    before = rows(database, "SELECT COUNT(*) FROM orders")
    head = ["Content-Type: application/json", "Transfer-Encoding: chunked"]
    status, body = raw_post(server, path, head, b"ZZZ\r\n{}\r\n0\r\n\r\n")
    assert status == 400, body
    error = json.loads(body)["error"]
    assert error["code"] == "bad_request" and "chunked" in error["message"], error
    assert rows(database, "SELECT COUNT(*) FROM orders") == before
    assert "Traceback" not in server.log()


def test_a_body_without_content_length_or_chunking_is_a_400_that_says_so(server, database):
    """HTTP/1.0 without a Content-Length: gunicorn hands the app no body at all."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        head = "POST /bik/placeOrder HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
        connection.sendall(head.encode() + b"\r\n\r\n" + json.dumps(sample_body()).encode())
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.split(b" ", 2)[1] == b"400", answer[:300]
    message = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["message"]
    assert "Content-Length" in message, message
