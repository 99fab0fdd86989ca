"""Prometheus metrics: summed over gunicorn workers, behind a token, counting only commits."""

from __future__ import annotations

import os
import signal

import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bikshop.extensions import db
from bikshop.models import Order
from bikshop.services import orders
from bikshop.services.payments import mark_paid_offline
from tests.bik import sample_body

TOKEN = "metrics-token-0123456789abcdef"


def _samples(text: str) -> dict:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_metrics_add_up_every_worker_and_survive_a_killed_one(gunicorn):
    server = gunicorn(workers=2, env={"BIKSHOP_METRICS_TOKEN": TOKEN})
    body = sample_body()
    session = requests.Session()
    for _ in range(2):  # the second is Bik's retry: same order, not a new one
        assert session.post(server.url + "/bik/placeOrder", json=body).status_code == 200
    assert session.post(server.url + "/bik/getOrder", json={"orderId": "nope"}).status_code == 404
    hook = session.post(
        server.url + "/webhooks/razorpay",
        data=b"{}",
        headers={"Content-Type": "application/json", "X-Razorpay-Signature": "0" * 64},
    )
    assert hook.status_code >= 400
    session.get(server.url + "/invoice/" + "x" * 32)
    for pid in server.worker_pids():
        os.kill(pid, signal.SIGKILL)  # counts live in files, not in the dead workers

    assert requests.get(server.url + "/metrics").status_code == 401
    wrong = requests.get(server.url + "/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    answer = requests.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    samples = _samples(answer.text)
    place_200 = (("method", "POST"), ("route", "/bik/placeOrder"), ("status", "200"))
    assert samples[("bikshop_http_requests_total", place_200)] == 2
    get_404 = (("method", "POST"), ("route", "/bik/getOrder"), ("status", "404"))
    assert samples[("bikshop_http_requests_total", get_404)] == 1
    latency = (("method", "POST"), ("route", "/bik/placeOrder"))
    assert samples[("bikshop_http_request_duration_seconds_count", latency)] == 2
    assert samples[("bikshop_orders_placed_total", ())] == 1
    status = (("status", str(hook.status_code)),)
    assert samples[("bikshop_webhook_failures_total", status)] == 1
    routes = {dict(labels).get("route") for _, labels in samples}
    assert "/invoice/<token>" in routes and not any("xxxx" in (r or "") for r in routes)


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (f"Bearer {TOKEN}", 200),
        (f"bearer {TOKEN}", 200),  # the scheme's word is case-insensitive (RFC 9110), as for Bik
        (f"BEARER  {TOKEN} ", 200),
        (f"Bearer {TOKEN[:-1]}", 401),
        (f"Basic {TOKEN}", 401),
        (TOKEN, 401),
        ("", 401),
    ],
)
def test_metrics_take_the_token_as_bik_s_bearer_check_does(make_app, header, status):
    client = make_app(METRICS_TOKEN=TOKEN).test_client()
    answer = client.get("/metrics", headers={"Authorization": header} if header else {})
    assert answer.status_code == status, answer.get_data(as_text=True)[:200]
    if status == 200:
        assert "bikshop_http_requests_total" in answer.get_data(as_text=True)


def test_metrics_are_off_without_a_token(client):
    answer = client.get("/metrics")
    assert answer.status_code == 404
    assert "BIKSHOP_METRICS_TOKEN" in answer.get_json()["error"]["message"]


def test_orders_and_payments_count_on_commit_only(app, client):
    def value(name, labels=None):
        return REGISTRY.get_sample_value(name, labels or {}) or 0

    before_orders = value("bikshop_orders_placed_total")
    before_paid = value("bikshop_payments_confirmed_total", {"kind": "offline"})
    body = sample_body()
    order_id = client.post("/bik/placeOrder", json=body).get_json()["order"]["id"]
    assert value("bikshop_orders_placed_total") == before_orders + 1
    replay = client.post("/bik/placeOrder", json=body)  # the same draft again: no new order
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert value("bikshop_orders_placed_total") == before_orders + 1
    with app.test_request_context():
        order = orders.find_order(order_id)
        mark_paid_offline(order, actor="admin:test")
        assert value("bikshop_payments_confirmed_total", {"kind": "offline"}) == before_paid + 1
        # A change that is rolled back never counts.
        columns, _ = orders._columns(sample_body(), "{}", "INR")
        unsaved = Order(
            **columns,
            request_fingerprint="x",
            number=999999,
            public_id="ORD-999999",
            name="#999999",
        )
        db.session.add(unsaved)
        db.session.flush()
        db.session.rollback()
    assert value("bikshop_orders_placed_total") == before_orders + 1


def test_odd_methods_share_one_series(client):
    """gunicorn passes any token as a method: each must not become a series of its own."""
    for method in ("BREW", "XYZ123", "PROPFIND"):
        assert client.open("/bik/getOrder", method=method).status_code == 405
    methods = {
        labels["method"]
        for metric in REGISTRY.collect()
        if metric.name == "bikshop_http_requests"
        for labels in (sample.labels for sample in metric.samples)
    }
    assert "other" in methods and not {"BREW", "XYZ123", "PROPFIND"} & methods
