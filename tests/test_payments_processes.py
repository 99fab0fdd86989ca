"""Payments through real gunicorn: the happy path through the page with the fake Razorpay POSTing
its webhook, Razorpay down or slow without a stuck worker, and webhook, redirect and reconcile
racing on the same payments."""

from __future__ import annotations

import re
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from sqlalchemy import func, select

from bikshop.extensions import db
from bikshop.models import OrderEvent, Payment, Refund, WebhookEvent
from bikshop.services.payments import reconcile
from tests.bik import sample_body
from tests.conftest import BASE_CONFIG, empty_database
from tests.fake_razorpay import FakeRazorpay, razorpay_settings
from tests.servers import GunicornServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shop(database_url, tmp_path_factory):
    """One fake Razorpay and one real gunicorn (2 sync workers) on it, for this module's tests:
    starting gunicorn is the slow part, and every test here works on orders of its own."""
    empty_database(database_url)
    with FakeRazorpay() as fake:
        env = {f"BIKSHOP_{key}": str(value) for key, value in BASE_CONFIG.items()}
        env.pop("BIKSHOP_TESTING")
        env |= {f"BIKSHOP_{key}": str(value) for key, value in razorpay_settings(fake).items()}
        env["BIKSHOP_DATABASE_URL"] = database_url
        server = GunicornServer(workers=2, env=env, log_dir=tmp_path_factory.mktemp("gunicorn"))
        server.start()
        fake.webhook_url = server.url + "/webhooks/razorpay"
        try:
            yield server, fake
        finally:
            server.stop()


def place(server) -> dict:
    response = requests.post(server.url + "/bik/placeOrder", json=sample_body(), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["order"]


def payment_status(server, order_id: str) -> str:
    response = requests.post(server.url + "/bik/getOrder", json={"orderId": order_id}, timeout=10)
    return response.json()["order"]["paymentStatus"]


def _concurrently(call, times: int) -> list:
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(call())) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    return results


def pay_button(session, invoice_url: str) -> str:
    page = session.get(invoice_url, timeout=10).text
    assert "Pay ₹947" in page
    return re.search(r'<form class="pay" method="post" action="([^"]+)"', page).group(1)


def test_happy_path_through_the_page_pay_link_webhook_paid(shop):
    server, fake = shop
    order = place(server)
    browser = requests.Session()
    action = pay_button(browser, order["invoiceUrl"])
    response = browser.post(server.url + action, allow_redirects=False, timeout=10)
    link = fake.last_link()
    assert response.status_code == 303 and response.headers["Location"] == link["short_url"]
    callback = fake.pay(link["id"])  # Razorpay POSTs the signed webhook to gunicorn
    assert fake.deliveries[-1].status_code == 200
    assert fake.deliveries[-1].json()["outcome"] == "paid"
    assert payment_status(server, order["id"]) == "paid"
    page = browser.get(callback, timeout=10)
    assert page.status_code == 200 and "Paid. Thank you" in page.text
    assert "Pay ₹947" not in browser.get(order["invoiceUrl"], timeout=10).text


def test_razorpay_slow_or_down_gives_a_friendly_page_and_no_stuck_worker(shop):
    server, fake = shop
    order = place(server)
    action = server.url + pay_button(requests.Session(), order["invoiceUrl"])
    workers = server.worker_pids()
    links = len(fake.links)
    fake.delay = 5  # far beyond BIKSHOP_RAZORPAY_TIMEOUT=1
    try:
        started = time.monotonic()
        # Both workers at once: each gives up on Razorpay after its timeout and answers.
        slow = _concurrently(lambda: requests.post(action, allow_redirects=False, timeout=10), 2)
        assert time.monotonic() - started < 3.5
    finally:
        fake.delay = 0
    assert [r.status_code for r in slow] == [503, 503]
    assert all("couldn't start the payment" in r.text for r in slow)
    assert requests.get(server.url + "/healthz", timeout=2).status_code == 200
    fake.stop()
    try:
        down = requests.post(action, allow_redirects=False, timeout=10)
    finally:
        fake.start()  # back up on the same port: the retry button now works
    assert down.status_code == 503 and "Try again" in down.text
    assert payment_status(server, order["id"]) == "pending"
    retry = requests.post(action, allow_redirects=False, timeout=10)
    assert len(fake.links) == links + 1  # the slow attempt's link, adopted rather than doubled
    assert retry.status_code == 303 and retry.headers["Location"] == fake.last_link()["short_url"]
    assert server.worker_pids() == workers  # no worker was killed for hanging
    assert "WORKER TIMEOUT" not in server.log()


def test_webhook_redirect_and_reconcile_racing_make_one_transition(shop, make_app):
    server, fake = shop
    app = make_app(**razorpay_settings(fake))  # the cron job's process, on the same database
    orders, callbacks, events = [], [], []
    for _ in range(3):
        order = place(server)
        action = pay_button(requests.Session(), order["invoiceUrl"])
        requests.post(server.url + action, allow_redirects=False, timeout=10)
        link_id = fake.last_link()["id"]
        callbacks.append(fake.pay(link_id, deliver=False))
        events.append(fake.paid_event(link_id))
        orders.append(order)
    start = threading.Barrier(3 * 3 + 1)
    answers: list[int] = []

    def webhook(event):
        start.wait()
        answers.append(fake.deliver(*event).status_code)

    def redirect(url):
        start.wait()
        answers.append(requests.get(url, timeout=10).status_code)

    def cron():
        start.wait()
        with app.app_context():
            reconcile(older_than=timedelta(0))

    threads = [threading.Thread(target=webhook, args=(e,)) for e in events]
    threads += [threading.Thread(target=webhook, args=(e,)) for e in events]  # duplicates
    threads += [threading.Thread(target=redirect, args=(url,)) for url in callbacks]
    threads.append(threading.Thread(target=cron))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(answers) == [200] * 9
    assert [payment_status(server, order["id"]) for order in orders] == ["paid"] * 3
    with app.app_context():
        payments = db.session.scalars(select(Payment)).all()
        assert len(payments) == 3 and len({p.order_id for p in payments}) == 3
        changes = db.session.execute(
            select(OrderEvent.order_id, func.count())
            .where(OrderEvent.kind == "payment_status_changed")
            .group_by(OrderEvent.order_id)
        ).all()
        assert sorted(count for _, count in changes) == [1, 1, 1]
        claimed = db.session.scalars(select(WebhookEvent).where(WebhookEvent.event_id.is_not(None)))
        assert len(claimed.all()) == 3


def test_taps_on_pay_at_once_make_one_link(gunicorn):
    """A customer on a slow phone taps Pay again and again: every tap is sent to the same
    link. Taps arriving while another tap's new link was being stored used to make a second
    link (attempt 2), a second open way to pay the same order."""
    with FakeRazorpay() as fake:
        env = {f"BIKSHOP_{k}": str(v) for k, v in razorpay_settings(fake).items()}
        server = gunicorn(workers=3, env=env | {"BIKSHOP_RATELIMIT_PAY": "off"})
        for _ in range(6):
            order = place(server)
            action = server.url + pay_button(requests.Session(), order["invoiceUrl"])
            before = len(fake.links)
            start = threading.Barrier(8)

            def tap(wait: float, action=action, start=start):
                start.wait()
                time.sleep(wait)  # spread over the moments a first tap stores its link
                return requests.post(action, allow_redirects=False, timeout=10)

            results: list = []
            threads = [
                threading.Thread(target=lambda w=n * 0.004, out=results: out.append(tap(w)))
                for n in range(8)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=15)
            assert [r.status_code for r in results] == [303] * 8, [r.text[:80] for r in results]
            assert len(fake.links) == before + 1, "one order, one link"
            assert {r.headers["Location"] for r in results} == {fake.last_link()["short_url"]}


def test_dashboard_refunds_delivered_many_times_at_once_count_once(gunicorn, make_app):
    """A refund made in Razorpay's dashboard has no row yet: deliveries of its event (different
    event ids, as Razorpay's retries of a slow answer have) race to store it. One stores it,
    the others find it: every delivery a 200, one row, counted once (on PostgreSQL the losers
    were 500s)."""
    with FakeRazorpay() as fake:
        app = make_app(**razorpay_settings(fake))  # reads the same database
        env = {f"BIKSHOP_{k}": str(v) for k, v in razorpay_settings(fake).items()}
        server = gunicorn(workers=4, env=env)
        fake.webhook_url = server.url + "/webhooks/razorpay"
        order = place(server)
        action = pay_button(requests.Session(), order["invoiceUrl"])
        requests.post(server.url + action, allow_redirects=False, timeout=10)
        link = fake.last_link()
        fake.pay(link["id"])
        assert payment_status(server, order["id"]) == "paid"
        payment_id = link["payments"][-1]["payment_id"]
        refund_ids = []
        for _ in range(3):  # three refunds of 100, each raced by 12 deliveries
            refund_id = fake.refund_in_dashboard(payment_id, amount=10000)
            fake.process_refund(refund_id)  # Razorpay has processed it; its events follow
            entities = {"refund": fake.refunds[refund_id], "payment": fake.payments[payment_id]}
            events = [fake.event("refund.processed", **entities) for _ in range(12)]
            start = threading.Barrier(len(events))

            def deliver(event, start=start):
                start.wait()
                return fake.deliver(*event)

            answers = _concurrently_each(deliver, events)
            assert [a.status_code for a in answers] == [200] * 12, [a.text[:99] for a in answers]
            refund_ids.append(refund_id)
        assert payment_status(server, order["id"]) == "partially_refunded"
        with app.app_context():
            rows = db.session.scalars(select(Refund).order_by(Refund.id)).all()
            assert [(r.razorpay_refund_id, r.amount, r.status) for r in rows] == [
                (refund_id, Decimal("100.00"), "processed") for refund_id in refund_ids
            ]
            assert db.session.scalars(select(Payment)).one().amount_refunded == Decimal("300.00")


def _concurrently_each(call, arguments) -> list:
    results: list = []
    threads = [threading.Thread(target=lambda a=a: results.append(call(a))) for a in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    return results
