"""Logs: JSON lines with a request id, no secrets, tokens, phone numbers or emails in them."""

from __future__ import annotations

import http.client
import json
import logging
import secrets
import sys
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from bikshop.logging import (
    _CREDENTIAL,
    _EMAIL,
    _INVOICE_TOKEN,
    _PHONE,
    JsonFormatter,
    Masker,
    _mask_phone,
    mask_path,
)
from tests.admin_support import place_order
from tests.bik import sample_body

SECRETS = {
    "BIKSHOP_BIK_AUTH": "bearer:bik-token-5f1e2d3c4b5a69788796a5b4",
    "BIKSHOP_RAZORPAY_KEY_ID": "rzp_test_keyid123456",
    "BIKSHOP_RAZORPAY_KEY_SECRET": "rzp-key-secret-8a7b6c5d4e3f",
    "BIKSHOP_RAZORPAY_WEBHOOK_SECRET": "whsec-0a9b8c7d6e5f4a3b",
    "BIKSHOP_METRICS_TOKEN": "metrics-token-1234567890ab",
}
PHONE, EMAIL = "+919876543210", "asha.rao@example.com"
SAMPLE_ADDRESS = sample_body()["order"]["address"]


def test_the_formatter_masks_contacts_secrets_and_tokens_and_keeps_the_rest():
    formatter = JsonFormatter(Masker(["s3cr3t-value-123"]))
    record = logging.LogRecord(
        "bikshop.test",
        logging.WARNING,
        __file__,
        1,
        "order for %s (%s) via GET /invoice/AbCdEfGhIjKlMnOpQrStUvWx with s3cr3t-value-123 "
        "and Authorization: Bearer xyz987 at 2024-05-08 12:30:00 draft nb_1715200000_t1",
        ("+91 98765 43210", "asha.rao@example.com"),
        None,
    )
    line = json.loads(formatter.format(record))
    message = line["message"]
    assert line["level"] == "warning" and line["logger"] == "bikshop.test"
    for leaked in ("98765", "asha.rao", "AbCdEfGhIjKl", "s3cr3t", "xyz987"):
        assert leaked not in message
    assert "**********10" in message and "a***@example.com" in message
    assert "/invoice/[token]" in message
    assert "2024-05-08 12:30:00" in message and "nb_1715200000_t1" in message


_PIECES = st.sampled_from(
    [
        "GET /bik/getOrder 200",
        "/invoice/",
        "AbCdEfGhIjKlMnOpQrStUv_-",
        "@",
        "a@b.co",
        "x.y@z",
        "Bearer ",
        "basic ",
        "Authorization: ",
        "password=",
        "TOKEN:",
        "secret",
        " ",
        "-",
        "+",
        "9876543210",
        "98765 43210",
        "+91-98765-43210",
        "+91 (981) 112-2334",
        "+91.98111.22334",
        "(",
        ")",
        ".",
        ":",
        "=",
        "phone:+",
        "@okhdfc",
        "2026-11-23",
        "12:30:00",
        "ORD-1001",
        "e3b0c44298fc1c149afbf4c8996fb924",
        "Mozilla/5.0",
        "'",
        '"',
        ";",
        "&",
        "\u20b9",
    ]
)


@settings(max_examples=500, derandomize=True, database=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=8).map("".join))
def test_the_masker_shortcut_never_skips_what_the_patterns_would_mask(text):
    """Text the quick check lets through unchanged is text every pattern leaves alone."""
    masker = Masker(["s3cret-value"])
    full = text
    for pattern, replacement in (
        (_CREDENTIAL, r"\1[secret]"),
        (_INVOICE_TOKEN, r"\1[token]"),
        (_EMAIL, r"\1***@\2"),
    ):
        full = pattern.sub(replacement, full)
    full = _PHONE.sub(_mask_phone, full)
    assert masker(text) == full


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("phone:+919811122334", "phone:**********34"),
        ("phone=9811122334.", "phone=********34."),
        ("+91 (981) 112-2334", "**********34"),
        ("(981) 112-2334, 0981 112 2334", "********34, *********34"),
        ("+91.98111.22334", "**********34"),
        ("+91 98765 43210 and +91-98765-43210", "**********10 and **********10"),
        ("upi priya.sharma@okhdfc or 9811122334@paytm", "upi p***@okhdfc or 9***@paytm"),
        ("asha.rao@example.com", "a***@example.com"),
    ],
)
def test_the_masker_hides_phones_emails_and_upi_ids_however_written(text, masked):
    assert Masker()(text) == masked


@pytest.mark.parametrize(
    "kept",
    [
        "ORD-1001 #1001 INV-00042",
        "total 947.00, refunded ₹1,549.97 of 12345678901.50",
        "at 2024-05-08 12:30:00 or 2026-11-23T12:30:00.123+05:30, epoch 1715200000.123",
        "request dcc06aa101b65b31d3575ab5a91c6b73 id 123e4567-e89b-12d3-a456-426614174000",
        "draft nb_1715200000_t1, payment pay_29QQoUBi66xm2f",
        '"productId":6862852391049',
        "from 192.168.100.200 and 127.0.0.1:8000, version 1.2.3, +1.2.3.4",
        "orders (1001) (1002), nothing@1",
    ],
)
def test_the_masker_leaves_order_numbers_amounts_times_and_ids_alone(kept):
    assert Masker()(kept) == kept


@pytest.mark.parametrize(
    "path",
    [
        "/invoice/{token}",
        "/invoice/{token}.pdf",
        "/invoice/../{token}",
        "/invoice//{token}/pay",
        "/static/{token}",
        "/{token}x",
    ],
)
def test_an_access_path_never_shows_a_token_wherever_the_client_put_it(path):
    token = secrets.token_urlsafe(24)
    masked = mask_path(path.format(token=token))
    assert token not in masked and "[token]" in masked
    assert mask_path("/static/fonts/DejaVuSans-Bold-subset.ttf").endswith("subset.ttf")
    assert mask_path("/admin/orders/ORD-1001") == "/admin/orders/ORD-1001"


def _formatted(records) -> str:
    formatter = JsonFormatter(Masker())
    return "\n".join(formatter.format(record) for record in records)


# A customer whose name and street would be in PostgreSQL's "Failing row contains (...)".
PRIYA = {"firstName": "Priya", "lastName": "Sharma", "address1": "14 Lotus Lane", "zip": "560102"}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # its DETAIL lines
def test_a_database_error_is_logged_by_its_constraint_never_by_the_row_it_refused(app, caplog):
    from sqlalchemy import text

    from bikshop.errors import as_http_error
    from bikshop.extensions import db
    from bikshop.services import orders

    client = app.test_client()
    placed = [place_order(client, address={**SAMPLE_ADDRESS, **PRIYA}) for _ in range(2)]
    tokens = [order["invoiceUrl"].rsplit("/", 1)[1] for order in placed]
    probes = (
        "ALTER TABLE orders ADD CONSTRAINT probe_fail "
        "CHECK (tracking_url IS NULL OR tracking_url NOT LIKE '%fail%') NOT VALID",
        "CREATE UNIQUE INDEX probe_unique ON orders (tracking_url)",
    )
    with app.app_context():
        for probe in probes:
            db.session.execute(text(probe))
        db.session.commit()
    caplog.set_level(logging.ERROR, logger="bikshop.errors")
    try:
        link = "https://track.example/Priya-Sharma"
        for public_id, tracking_url in (
            (placed[0]["id"], link + "/fail"),  # CHECK: "Failing row contains (...)"
            (placed[0]["id"], link),
            (placed[1]["id"], link),  # UNIQUE: "Key (tracking_url)=(...) already exists"
        ):
            with app.test_request_context("/admin/orders/x/fulfillment", method="POST"):
                order = orders.find_order(public_id)
                try:
                    orders.set_fulfillment(
                        order, "fulfilled", actor="admin:owner", tracking_url=tracking_url
                    )
                except Exception as error:
                    assert as_http_error(error).code == 500
    finally:
        with app.app_context():
            db.session.rollback()
            db.session.execute(text("ALTER TABLE orders DROP CONSTRAINT IF EXISTS probe_fail"))
            db.session.execute(text("DROP INDEX IF EXISTS probe_unique"))
            db.session.commit()

    logged = _formatted(caplog.records)
    assert len(caplog.records) == 2, logged
    check, unique = (json.loads(line)["exc"] for line in logged.splitlines())
    # The type, the main message and the constraint; then straight on to the statement.
    refused = '"orders" violates check constraint "probe_fail"\n[SQL: UPDATE orders'
    assert (
        "IntegrityError: (psycopg.errors.CheckViolation) new row for relation " + refused in check
    )
    duplicate = 'duplicate key value violates unique constraint "probe_unique"\n[SQL: UPDATE'
    assert "IntegrityError: (psycopg.errors.UniqueViolation) " + duplicate in unique
    for leaked in ("Priya", "Sharma", "Lotus", "Failing row", "Key (", *tokens):
        assert leaked not in logged, leaked


def test_an_exception_text_masks_token_like_runs_and_keeps_names_and_hex_ids():
    token, session_key = "2yo1lHg6-9QYCQCXqH_m0sDTVKYGlmOi", "Zq3" + "x_Y-9" * 8
    kept = [
        secrets.token_hex(16),  # a request id
        "63ea46c71692f3b40309dbad272dc060bff81ffbfc3e69c430f5c7ce52504e11",  # a body's hash
        "ix_admin_login_failures_address_created_at",  # an index or constraint
        "ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS",  # a setting
        "ORD-1001",
    ]
    try:
        raise LookupError(f"no invoice {token} for session {session_key}; " + " ".join(kept))
    except LookupError as error:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed: %s", (error,), None)
        record.exc_info = sys.exc_info()
    line = json.loads(_formatted([record]))
    for text in (line["message"], line["exc"].splitlines()[-1]):
        assert token not in text and session_key not in text
        assert text.count("[token]") == 2, text
        for name in kept:
            assert name in text


def get_as_written(url: str, path: str) -> int:
    """GET ``path`` exactly as written (requests would resolve its "..")."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_request_id_is_echoed_or_made(client):
    answer = client.get("/healthz", headers={"X-Request-ID": "nginx-4f2a9c"})
    assert answer.headers["X-Request-ID"] == "nginx-4f2a9c"
    made = client.get("/healthz").headers["X-Request-ID"]
    assert len(made) == 32 and int(made, 16) >= 0
    odd = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert odd.headers["X-Request-ID"] != "bad id\twith spaces"


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # about logs, not databases
def test_gunicorn_logs_are_json_without_secrets_and_errors_show_no_trace(gunicorn):
    server = gunicorn(workers=1, env=SECRETS, app="tests.faults:crashing_app()")
    bik = {"Authorization": "Bearer bik-token-5f1e2d3c4b5a69788796a5b4"}
    body = sample_body(phoneNumber=PHONE, email=EMAIL)
    placed = requests.post(
        server.url + "/bik/placeOrder", json=body, headers={**bik, "X-Request-ID": "req-place-1"}
    )
    assert placed.status_code == 200 and placed.headers["X-Request-ID"] == "req-place-1"
    token = placed.json()["order"]["invoiceUrl"].rsplit("/", 1)[1]
    requests.get(f"{server.url}/invoice/{token}?razorpay_signature=sig-in-query-77")
    assert get_as_written(server.url, f"/invoice/../{token}") == 404  # a prober's path
    # Doubled slashes are served as single ones; the access line masks the token either way.
    assert get_as_written(server.url, f"/invoice//{token}?ref={token}") == 200
    requests.post(
        server.url + "/bik/getOrder",
        json={"orderId": "x"},
        headers={"Authorization": "Bearer wrong-guess-42"},
    )
    crash = requests.get(server.url + "/crash", headers={"X-Request-ID": "req-crash-1"})
    page = requests.get(server.url + "/crash", headers={"Accept": "text/html"})
    server.stop()

    # A production failure tells the client nothing about the code.
    assert crash.status_code == 500 and page.status_code == 500
    assert crash.json()["error"]["code"] == "internal_error"
    for answer in (crash, page):
        assert "Traceback" not in answer.text and "boom" not in answer.text
        assert "RuntimeError" not in answer.text

    log = server.log()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert lines, log
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    assert any(line["request_id"] == "req-place-1" and line["status"] == 200 for line in access)
    crashed = [line for line in lines if line.get("request_id") == "req-crash-1"]
    assert any(line["level"] == "error" and "Traceback" in line.get("exc", "") for line in crashed)
    assert any(line["path"] == "/invoice/[token]" for line in access)
    for leaked in [
        *(value.split(":", 1)[-1] for value in SECRETS.values() if "rzp_test" not in value),
        token,
        "sig-in-query-77",
        "wrong-guess-42",
        "98765",
        "43210",
        "asha.rao",
        "asha@",
    ]:
        assert leaked not in log, leaked


def test_a_streamed_answer_that_fails_is_logged_and_the_worker_lives_on(gunicorn):
    """gunicorn answers an app that fails while its streamed body is being read (a CSV export
    whose query breaks) with a Response of its own, which has a status line but no status_code:
    the access line must still be written, and the worker must not die writing it."""
    server = gunicorn(workers=1, env=SECRETS, app="tests.faults:crashing_app()")
    (worker,) = server.worker_pids()
    answer = requests.get(
        server.url + "/crash-mid-stream", headers={"X-Request-ID": "stream-1"}, timeout=10
    )
    assert answer.status_code == 500 and "Traceback" not in answer.text
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
    assert server.worker_pids() == [worker]  # the same worker: it did not die
    log = server.log_once_it_has("GET /crash-mid-stream 500")
    access = [
        json.loads(line)
        for line in log.splitlines()
        if '"gunicorn.access"' in line and "/crash-mid-stream" in line
    ]
    assert 500 in [line["status"] for line in access], log
    # gunicorn's own error page has no headers of the app's: the id is the one nginx sent.
    assert [line["request_id"] for line in access if line["status"] == 500] == ["stream-1"], log
    assert "has no attribute" not in log, log


def send_raw(url: str, request: bytes) -> bytes:
    """Send ``request`` as it is (no client would send a malformed one); return the answer."""
    import socket

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(65536)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # about logs, not databases
def test_gunicorn_error_lines_name_a_request_without_its_query_string_or_token(gunicorn):
    """gunicorn's own lines naming a request (a malformed request line; an answer that broke
    mid-stream) show its path as access lines do: no query string, token-like runs masked."""
    server = gunicorn(workers=1, env=SECRETS, app="tests.faults:crashing_app()")
    token = secrets.token_urlsafe(24)
    for line in (f"GET /x/{token}?q=Priyaxyz\x01 HTTP/1.1", "GET /x?q=Priya Sharma HTTP/1.1"):
        refused = send_raw(server.url, f"{line}\r\nHost: x\r\n\r\n".encode())
        assert refused.startswith(b"HTTP/1.1 400"), refused
    broken = requests.get(f"{server.url}/crash-mid-stream?q=Priya&ref={token}", timeout=10)
    assert broken.status_code == 500
    log = server.log_once_it_has("Invalid HTTP Version", "Error handling request GET")
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    messages = [line["message"] for line in lines if line["logger"] == "gunicorn.error"]
    shown = [
        "Invalid HTTP request line: 'GET /x/[token]?… HTTP/1.1'",
        "Invalid HTTP Version: '…'",  # what followed the space: Sharma HTTP/1.1
        "Error handling request GET /crash-mid-stream?…",
    ]
    for message in shown:
        assert any(line.endswith(message) for line in messages), (message, messages)
    for leaked in (token, "Priya", "Sharma", "q="):
        assert leaked not in log, leaked
