"""Refunds whose webhook never came: ``reconcile-payments`` asks Razorpay about every refund
still pending and settles it as ``refund.processed`` or ``refund.failed`` would have (fake
Razorpay over real HTTP through the SDK, real database)."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from decimal import Decimal

import pytest
from sqlalchemy import select

from bikshop.errors import ApiError
from bikshop.extensions import db
from bikshop.models import Order, OrderEvent, Payment, Refund
from bikshop.services.payments import mark_paid_offline, refund, return_outside_razorpay
from tests.fake_razorpay import (
    path_of,
    pay_only_link,
    payment_status,
    place_order,
    post_webhook,
    shop_with_open_link,
)


@pytest.fixture
def paid(make_app):
    """bikshop with one order paid through the fake Razorpay (its webhook delivered)."""
    with shop_with_open_link(make_app) as (app, client, fake, order_id, _):
        assert pay_only_link(client, fake)["outcome"] == "paid"
        yield app, client, fake, order_id


def ask_refund(app, amount=None) -> str:
    with app.app_context():
        row = refund(db.session.scalars(select(Order)).one(), amount, actor="admin:o@x.in")
        return row.razorpay_refund_id


def refunds(app) -> list[tuple[str, Decimal]]:
    with app.app_context():
        rows = db.session.scalars(select(Refund).order_by(Refund.id))
        return [(row.status, row.amount) for row in rows]


def reconcile(app, *args):
    return app.test_cli_runner().invoke(args=["reconcile-payments", *args])


def test_a_processed_refund_whose_webhook_was_lost_is_settled_by_reconcile(paid):
    app, client, fake, order_id = paid
    refund_id = ask_refund(app)
    fake.process_refund(refund_id)  # Razorpay refunded; its refund.processed never arrives
    young = reconcile(app)  # by default only what is older than 15 minutes
    assert young.exit_code == 0 and refund_id not in young.output
    assert payment_status(client, order_id) == "paid"
    result = reconcile(app, "--older-than", "0")
    assert result.exit_code == 0, result.output
    assert f"{refund_id}: order refunded" in result.output
    assert payment_status(client, order_id) == "refunded"
    assert refunds(app) == [("processed", Decimal("947.00"))]
    again = reconcile(app, "--older-than", "0")
    assert again.exit_code == 0 and refund_id not in again.output
    with app.app_context():
        assert db.session.scalars(select(Order)).one().amount_refunded == Decimal("947.00")


def test_a_failed_refund_whose_webhook_was_lost_frees_the_amount_again(paid):
    app, client, fake, order_id = paid
    refund_id = ask_refund(app, Decimal("500"))
    fake.fail_refund(refund_id)
    result = reconcile(app, "--older-than", "0")
    assert result.exit_code == 0 and f"{refund_id}: refund failed" in result.output
    assert refunds(app) == [("failed", Decimal("500.00"))]
    assert payment_status(client, order_id) == "paid"
    ask_refund(app)  # the whole ₹947 can be asked again: nothing is held back any more
    assert refunds(app)[-1] == ("pending", Decimal("947.00"))


def test_a_refund_still_pending_at_razorpay_stays_pending_and_razorpay_down_exits_1(paid):
    app, client, fake, order_id = paid
    refund_id = ask_refund(app, Decimal("100"))
    result = reconcile(app, "--older-than", "0")
    assert result.exit_code == 0 and f"{refund_id}: no change: refund is pending" in result.output
    fake.stop()
    try:
        down = reconcile(app, "--older-than", "0")
    finally:
        fake.start()
    assert down.exit_code == 1 and f"failed: {refund_id}: " in down.output
    assert refunds(app) == [("pending", Decimal("100.00"))]
    assert payment_status(client, order_id) == "paid"


def test_reconcile_and_the_late_webhook_count_a_refund_once(paid):
    app, client, fake, order_id = paid
    refund_id = ask_refund(app, Decimal("100"))
    raw, headers = fake.process_refund(refund_id)
    assert f"{refund_id}: order partially_refunded" in reconcile(app, "--older-than", "0").output
    late = post_webhook(client, raw, headers)  # Razorpay's retry arrives after all
    assert late.status_code == 200
    assert late.get_json()["outcome"] == "no change: refund already processed"
    with app.app_context():
        assert db.session.scalars(select(Order)).one().amount_refunded == Decimal("100.00")


def test_the_refund_failed_webhook_frees_the_amount_once(paid):
    app, client, fake, order_id = paid
    refund_id = ask_refund(app, Decimal("947"))
    raw, headers = fake.fail_refund(refund_id)
    first = post_webhook(client, raw, headers)
    assert first.status_code == 200 and first.get_json()["outcome"] == "refund failed"
    headers["X-Razorpay-Event-Id"] = "evt_RetriedAgain01"
    assert post_webhook(client, raw, headers).get_json()["outcome"].startswith("no change")
    assert refunds(app) == [("failed", Decimal("947.00"))]
    assert payment_status(client, order_id) == "paid"


# ---- a refund whose answer was lost: Razorpay may or may not have made it -------------------
def ask_unconfirmed(app, amount) -> str:
    """Ask for a refund whose answer is lost; the 503 says it is unconfirmed. Its receipt."""
    with app.app_context():
        with pytest.raises(ApiError) as lost:
            refund(db.session.scalars(select(Order)).one(), amount, actor="admin:o@x.in")
        assert (lost.value.code, lost.value.error_code) == (503, "refund_unconfirmed")
        assert "may or may not have been made" in lost.value.description
        row = db.session.scalars(select(Refund).order_by(Refund.id.desc())).first()
        assert (row.status, row.razorpay_refund_id) == ("pending", None)
        return f"bikshop-refund-{row.id}"


def refund_posts(fake) -> list[dict]:
    return [body for method, path, body in fake.calls if path.endswith("/refund")]


@pytest.mark.parametrize("lost_after", [0.0, 1.5], ids=["504-page", "past-our-timeout"])
def test_a_refund_whose_answer_was_lost_is_held_and_reconcile_finds_it_by_receipt(paid, lost_after):
    app, client, fake, order_id = paid
    fake.lose_refund_answers, fake.lost_answer_delay = 1, lost_after
    receipt = ask_unconfirmed(app, Decimal("500"))
    (made,) = fake.refunds.values()  # Razorpay did make it
    assert made["receipt"] == receipt and made["amount"] == 50000
    assert refunds(app) == [("pending", Decimal("500.00"))]  # not failed: it may be real
    with app.app_context(), pytest.raises(ApiError) as second:  # so it is held back
        refund(db.session.scalars(select(Order)).one(), Decimal("448"), actor="admin")
    assert second.value.code == 422 and "at most 447 INR" in second.value.description
    result = reconcile(app, "--older-than", "0")
    assert result.exit_code == 0, result.output
    assert f"{receipt}: no change: refund is pending at Razorpay" in result.output
    assert len(refund_posts(fake)) == 1  # found by its receipt, not asked again
    with app.app_context():
        (row,) = db.session.scalars(select(Refund))
        assert row.razorpay_refund_id == made["id"]
    fake.process_refund(made["id"])
    settled = reconcile(app, "--older-than", "0")
    assert f"{made['id']}: order partially_refunded" in settled.output
    assert refunds(app) == [("processed", Decimal("500.00"))]
    assert len(fake.refunds) == 1 and payment_status(client, order_id) == "partially_refunded"


def test_a_refund_razorpay_failed_before_making_is_asked_again_with_the_same_key(paid):
    app, client, fake, order_id = paid
    fake.refund_outage = 1  # a 5xx: bikshop cannot tell that nothing was made
    receipt = ask_unconfirmed(app, Decimal("100"))
    assert fake.refunds == {} and refunds(app) == [("pending", Decimal("100.00"))]
    young = reconcile(app)  # 15 minutes by default: not asked again yet
    assert receipt not in young.output and fake.refunds == {}
    result = reconcile(app, "--older-than", "0")
    assert f"{receipt}: no change: refund is pending at Razorpay" in result.output
    (made,) = fake.refunds.values()
    assert made["receipt"] == receipt and made["amount"] == 10000
    first, again = fake.refund_key_log
    assert first == again and len(first) >= 10  # the same X-Refund-Idempotency key
    assert refund_posts(fake) == [{"amount": 10000, "receipt": receipt}] * 2
    assert reconcile(app, "--older-than", "0").exit_code == 0
    assert len(fake.refunds) == 1  # a later run fetches it by id: never a second refund


def test_razorpay_answering_the_same_key_twice_makes_one_refund(paid):
    """What bikshop relies on when it asks again: the fake keeps Razorpay's documented rule,
    and bikshop's second ask after a lost answer adopts the refund already made."""
    app, client, fake, order_id = paid
    fake.lose_refund_answers = 1
    receipt = ask_unconfirmed(app, Decimal("200"))
    fake.refunds[next(iter(fake.refunds))]["receipt"] = None  # not findable by receipt
    result = reconcile(app, "--older-than", "0")
    assert f"{receipt}: no change: refund is pending at Razorpay" in result.output
    assert len(fake.refunds) == 1 and len(refund_posts(fake)) == 2
    with app.app_context():
        (row,) = db.session.scalars(select(Refund))
        assert row.razorpay_refund_id == next(iter(fake.refunds))


def test_the_webhook_settles_a_lost_answer_by_receipt_not_by_amount(paid):
    app, client, fake, order_id = paid
    fake.lose_refund_answers = 2
    first = ask_unconfirmed(app, Decimal("100"))
    second = ask_unconfirmed(app, Decimal("100"))  # same amount: only the receipt tells
    by_receipt = {r["receipt"]: r["id"] for r in fake.refunds.values()}
    response = post_webhook(client, *fake.process_refund(by_receipt[second]))
    assert response.get_json()["outcome"] == "order partially_refunded"
    with app.app_context():
        stored = {
            f"bikshop-refund-{r.id}": (r.status, r.razorpay_refund_id)
            for r in db.session.scalars(select(Refund))
        }
    assert stored == {first: ("pending", None), second: ("processed", by_receipt[second])}
    result = reconcile(app, "--older-than", "0")
    assert f"{first}: no change: refund is pending at Razorpay" in result.output
    assert len(fake.refunds) == 2  # the first was found, not made again


def test_a_lost_ask_that_razorpay_now_refuses_frees_the_amount(paid):
    app, client, fake, order_id = paid
    fake.refund_outage = 1
    receipt = ask_unconfirmed(app, Decimal("947"))
    (payment,) = fake.payments.values()
    payment["amount_refunded"] = payment["amount"]  # refunded meanwhile in Razorpay's dashboard
    result = reconcile(app, "--older-than", "0")
    assert result.exit_code == 0, result.output
    assert f"{receipt}: refund failed: Razorpay refused it: " in result.output
    assert "greater than amount captured" in result.output
    assert refunds(app) == [("failed", Decimal("947.00"))] and fake.refunds == {}


def test_razorpay_unreachable_fails_the_refund_at_once_since_nothing_was_sent(paid):
    app, client, fake, order_id = paid
    with app.app_context():
        version = db.session.scalars(select(Order)).one().version
    fake.stop()
    try:
        with app.app_context(), pytest.raises(ApiError) as down:
            refund(db.session.scalars(select(Order)).one(), Decimal("100"), actor="admin")
    finally:
        fake.start()
    assert (down.value.code, down.value.error_code) == (503, "payment_gateway_unavailable")
    assert "nothing was changed" in down.value.description
    assert refunds(app) == [("failed", Decimal("100.00"))]
    with app.app_context():
        # Two new versions: the refund held (the invoice says it is on its way), then let go
        # (a page drawn while Razorpay was asked must not be served as current).
        assert db.session.scalars(select(Order)).one().version == version + 2


@contextmanager
def accepting_nothing():
    """A loopback address whose listener never accepts and whose queue is full: a connection
    to it times out without a byte sent, as an unreachable Razorpay behind a dropping
    firewall does."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    queued = []
    try:
        for _ in range(3):
            waiting = socket.socket()
            waiting.setblocking(False)
            waiting.connect_ex(listener.getsockname())
            queued.append(waiting)
        host, port = listener.getsockname()
        yield f"http://{host}:{port}/v1"
    finally:
        for waiting in queued:
            waiting.close()
        listener.close()


def test_no_connection_in_time_fails_the_refund_at_once_since_nothing_was_sent(paid):
    """A connect timeout was read as "did not answer in time" (requests' ConnectTimeout is a
    Timeout too, caught first): the refund was held as maybe made, the owner told to wait for
    reconcile-payments, when Razorpay certainly never heard of it (design audit)."""
    app, client, fake, order_id = paid
    with accepting_nothing() as address:
        app.config.update(RAZORPAY_API_URL=address, RAZORPAY_TIMEOUT=1)
        with app.app_context(), pytest.raises(ApiError) as down:
            refund(db.session.scalars(select(Order)).one(), Decimal("100"), actor="admin")
    assert (down.value.code, down.value.error_code) == (503, "payment_gateway_unavailable")
    assert "nothing was changed" in down.value.description
    assert refunds(app) == [("failed", Decimal("100.00"))]
    with app.app_context():  # failed through fail_refund, the one way a refund fails: once
        failed = db.session.scalars(select(OrderEvent).filter_by(kind="refund_failed")).all()
        assert [event.message for event in failed] == [
            "Razorpay could not refund 100 INR (Razorpay could not be reached)"
        ]


def test_a_rate_limited_refund_is_a_retry_and_frees_its_amount(paid):
    """Razorpay's 429 turned the refund away unread: a 503 to try again, nothing held back (not
    the 502 of a refusal for good), and the next ask refunds."""
    app, client, fake, order_id = paid
    fake.rate_limited = 1
    with app.app_context(), pytest.raises(ApiError) as busy:
        refund(db.session.scalars(select(Order)).one(), Decimal("100"), actor="admin")
    assert (busy.value.code, busy.value.error_code) == (503, "payment_gateway_unavailable")
    assert refunds(app) == [("failed", Decimal("100.00"))]
    assert ask_refund(app, Decimal("100"))
    assert refunds(app)[-1][1] == Decimal("100.00")
    assert len([1 for _, path, _ in fake.calls if path.endswith("/refund")]) == 2


def test_a_connection_dropped_after_the_ask_went_out_leaves_the_refund_unconfirmed(paid):
    """A reset after the request was sent (not a refused connection) may have been acted on."""
    app, client, fake, order_id = paid
    listener = socket.create_server(("127.0.0.1", 0))
    received = []

    def hang_up():
        conn, _ = listener.accept()
        with conn:
            received.append(conn.recv(65536))  # the whole request arrives, then the line drops

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    app.config["RAZORPAY_API_URL"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        receipt = ask_unconfirmed(app, Decimal("100"))
    finally:
        thread.join(5)
        listener.close()
        app.config["RAZORPAY_API_URL"] = fake.url
    assert received and b"X-Refund-Idempotency" in received[0]
    assert refunds(app) == [("pending", Decimal("100.00"))]
    result = reconcile(app, "--older-than", "0")  # Razorpay never got it: asked again, made once
    assert f"{receipt}: no change: refund is pending at Razorpay" in result.output
    assert [r["receipt"] for r in fake.refunds.values()] == [receipt]


def test_a_refund_that_comes_before_its_payment_is_known_is_not_lost(make_app):
    """The payment's webhook is lost; the shop refunds it in Razorpay's dashboard and
    refund.processed arrives first: bikshop asks Razorpay for the link, records the payment,
    then the refund. The order ends refunded, never paid with the money already returned."""
    with shop_with_open_link(make_app) as (app, client, fake, order_id, _):
        link_id = fake.only_link()["id"]
        fake.pay(link_id, deliver=False)
        payment_id = fake.links[link_id]["payments"][-1]["payment_id"]
        raw, headers = fake.process_refund(fake.refund_in_dashboard(payment_id))
        answer = post_webhook(client, raw, headers)
        assert answer.status_code == 200 and answer.get_json()["outcome"] == "order refunded"
        assert payment_status(client, order_id) == "refunded"
        assert refunds(app) == [("processed", Decimal("947.00"))]
        # The payment's own webhook, late, changes nothing: the order stays refunded.
        late = post_webhook(client, *fake.paid_event(link_id))
        assert late.status_code == 200 and late.get_json()["outcome"].startswith("no change")
        assert payment_status(client, order_id) == "refunded"


@pytest.mark.parametrize("number", ["9" * 20, "2147483648", "\u00b2"])
def test_a_refund_whose_receipt_only_looks_like_bikshops_is_recorded(make_app, number):
    """Anyone with the API keys can give a refund a receipt: "bikshop-refund-" and digits no
    row of ours could have were bound as an id (PostgreSQL: integer out of range; SQLite:
    too large; "²" failed int()), a 500 that Razorpay retried for a day while the refund,
    real money returned, was never recorded (design audit). It is a refund bikshop did not
    ask for, recorded as one made in Razorpay's dashboard."""
    with shop_with_open_link(make_app) as (app, client, fake, order_id, _):
        assert pay_only_link(client, fake)["outcome"] == "paid"
        payment_id = next(iter(fake.payments))
        refund_id = fake.refund_in_dashboard(payment_id)
        fake.refunds[refund_id]["receipt"] = "bikshop-refund-" + number
        answer = post_webhook(client, *fake.process_refund(refund_id))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert payment_status(client, order_id) == "refunded"
        assert refunds(app) == [("processed", Decimal("947.00"))]


def test_a_refund_and_its_payments_webhook_at_the_same_moment_end_refunded(make_app, monkeypatch):
    """refund.processed and payment_link.paid delivered at once: the refund found no payment
    row, the paid webhook committed one, and the refund then read the order as paid and filed
    itself as an extra payment's, leaving the order paid with the money returned (payments
    probe, PostgreSQL: 2 of 30 races). The refund now looks again once it holds the order.
    The refund is held in that window until the paid webhook has committed (on SQLite, which
    runs the two one after the other, for at most 2 s): both backends must end refunded."""
    from bikshop.services import webhooks

    with shop_with_open_link(make_app) as (app, client, fake, order_id, _):
        link_id = fake.only_link()["id"]
        fake.pay(link_id, deliver=False)
        payment_id = fake.links[link_id]["payments"][-1]["payment_id"]
        refund_event = fake.process_refund(fake.refund_in_dashboard(payment_id))
        paid_event = fake.paid_event(link_id)
        in_window, paid_committed = threading.Event(), threading.Event()
        looked_up = webhooks._link_of_payment

        def held_in_the_window(payment):
            link = looked_up(payment)
            if threading.current_thread().name == "refund":
                in_window.set()  # no payment row found; the order not yet read
                paid_committed.wait(2)
            return link

        monkeypatch.setattr(webhooks, "_link_of_payment", held_in_the_window)
        answers = {}

        def deliver(name, event):
            answers[name] = post_webhook(app.test_client(), *event).get_json()["outcome"]

        refunding = threading.Thread(target=deliver, args=("refund", refund_event), name="refund")
        refunding.start()
        assert in_window.wait(10)
        deliver("paid", paid_event)
        paid_committed.set()
        refunding.join(30)
        assert answers["refund"] == "order refunded", answers
        assert payment_status(client, order_id) == "refunded"
        assert refunds(app) == [("processed", Decimal("947.00"))]


def test_a_refund_before_its_payment_while_razorpay_is_down_is_a_503_then_applied(make_app):
    with shop_with_open_link(make_app) as (app, client, fake, order_id, _):
        link_id = fake.only_link()["id"]
        fake.pay(link_id, deliver=False)
        payment_id = fake.links[link_id]["payments"][-1]["payment_id"]
        raw, headers = fake.process_refund(fake.refund_in_dashboard(payment_id))
        fake.stop()
        refused = post_webhook(client, raw, headers)
        assert refused.status_code == 503  # Razorpay delivers it again later
        assert refused.get_json()["error"]["code"] == "retry_later"
        assert payment_status(client, order_id) == "pending" and refunds(app) == []
        fake.start()
        again = post_webhook(client, raw, headers)  # the same event id: not a duplicate
        assert again.status_code == 200 and again.get_json()["outcome"] == "order refunded"
        assert payment_status(client, order_id) == "refunded"


def test_a_refund_of_a_mismatched_payment_goes_on_the_timeline_and_changes_nothing(make_app):
    with shop_with_open_link(make_app) as (app, client, fake, order_id, _):
        link_id = fake.only_link()["id"]
        fake.pay(link_id, amount_paid=50000, deliver=False)  # ₹500 of ₹947: a mismatch
        mismatch = post_webhook(client, *fake.paid_event(link_id)).get_json()["outcome"]
        assert mismatch.startswith("mismatch")  # the order stays pending
        payment_id = fake.links[link_id]["payments"][-1]["payment_id"]
        raw, headers = fake.process_refund(fake.refund_in_dashboard(payment_id))
        answer = post_webhook(client, raw, headers)
        assert answer.status_code == 200
        assert answer.get_json()["outcome"].startswith("recorded: refund")
        assert payment_status(client, order_id) == "pending" and refunds(app) == []
        with app.app_context():
            order = db.session.scalars(select(Order)).one()
            [entry] = [e for e in order.events if e.kind == "refund_unrecorded_payment"]
            assert (
                "Razorpay made a refund of 500 INR" in entry.message and payment_id in entry.message
            )


def test_reconcile_asks_again_about_a_link_closed_while_a_payment_was_under_way(make_app):
    """Razorpay completes a payment begun before the link expired; its webhook is lost."""
    with shop_with_open_link(make_app) as (app, client, fake, order_id, _):
        link_id = fake.only_link()["id"]
        fake.expire(link_id)
        expired = post_webhook(
            client, *fake.event("payment_link.expired", payment_link=fake.links[link_id])
        )
        assert expired.get_json()["outcome"] == "link expired"
        fake.pay(link_id, deliver=False)
        result = reconcile(app, "--older-than", "0")
        assert result.exit_code == 0, result.output
        assert f"{link_id}: paid" in result.output
        assert payment_status(client, order_id) == "paid"


def test_a_confirming_redirect_of_a_payment_refunded_since_lets_the_customer_pay_again(
    make_app,
):
    """The customer came back with a signed "paid" while Razorpay could not be asked (the
    invoice says "confirming"); the payment turns out to be ₹500 on a ₹947 link, and the shop
    refunds it in full. The "confirming" stood for good: no Pay button, ever (payments probe).
    It lasts only while Razorpay has not said what became of the link."""
    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        link_id = fake.only_link()["id"]
        callback = path_of(fake.pay(link_id, amount_paid=50000, deliver=False))
        fake.stop()
        assert "Payment received, confirming" in client.get(callback).get_data(as_text=True)
        fake.start()
        outcome = post_webhook(client, *fake.paid_event(link_id)).get_json()["outcome"]
        assert outcome.startswith("mismatch")
        page = client.get(invoice).get_data(as_text=True)
        assert "The shop is checking it" in page and "Pay ₹947" not in page
        payment_id = fake.links[link_id]["payments"][-1]["payment_id"]
        post_webhook(client, *fake.process_refund(fake.refund_in_dashboard(payment_id)))
        page = client.get(invoice).get_data(as_text=True)
        assert "confirming" not in page and "Pay ₹947" in page
        assert client.post(invoice + "/pay").status_code == 303
        assert len(fake.links) == 2 and payment_status(client, order_id) == "pending"


def test_a_confirming_redirect_outlasts_a_link_reported_expired_since(make_app):
    """A signed "paid" redirect for a payment Razorpay captured, whose webhook is late; then a
    late "expired" for the link. A payment begun before expiry can complete after it, so the
    expiry proves nothing: the invoice keeps "confirming" and offers no Pay (a second link
    could charge the customer twice; review probe), until the payment's own webhook."""
    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        link_id = fake.only_link()["id"]
        callback = path_of(fake.pay(link_id, deliver=False))
        fake.stop()
        assert "Payment received, confirming" in client.get(callback).get_data(as_text=True)
        fake.start()
        expired_snapshot = fake.links[link_id] | {"status": "expired"}
        post_webhook(client, *fake.event("payment_link.expired", payment_link=expired_snapshot))
        page = client.get(invoice).get_data(as_text=True)
        assert "Payment received, confirming" in page and "Pay ₹947" not in page
        paying = client.post(invoice + "/pay")
        assert paying.status_code == 303 and paying.headers["Location"].endswith(invoice)
        assert len(fake.links) == 1  # no second link
        assert post_webhook(client, *fake.paid_event(link_id)).status_code == 200
        assert payment_status(client, order_id) == "paid"


def test_a_mismatched_payment_refunded_in_full_lets_the_customer_pay_again(make_app):
    """₹500 paid on a ₹947 link settles nothing; the shop refunds it in Razorpay's dashboard, in
    two parts. While any of it is held the invoice says the shop is checking the payment; once
    all of it is back, the link is released: the Pay button returns and a new link is made."""
    from bikshop.models import PaymentLink
    from bikshop.services.payments import unsettled_links

    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        link_id = fake.only_link()["id"]
        fake.pay(link_id, amount_paid=50000, deliver=False)
        assert (
            post_webhook(client, *fake.paid_event(link_id))
            .get_json()["outcome"]
            .startswith("mismatch")
        )
        payment_id = fake.links[link_id]["payments"][-1]["payment_id"]
        checking = "The shop is checking it against your order"
        part = post_webhook(
            client, *fake.process_refund(fake.refund_in_dashboard(payment_id, 20000))
        )
        assert "nothing is held" not in part.get_json()["outcome"]
        assert checking in client.get(invoice).get_data(as_text=True)  # ₹300 still held
        rest = post_webhook(client, *fake.process_refund(fake.refund_in_dashboard(payment_id)))
        assert rest.get_json()["outcome"].endswith("nothing is held for the order any more")
        with app.app_context():
            order = db.session.scalars(select(Order)).one()
            assert unsettled_links(order) == []
            assert db.session.scalars(select(PaymentLink)).one().status == "refunded"
            assert "the customer can pay the order again" in order.events[-1].message
        page = client.get(invoice).get_data(as_text=True)
        assert checking not in page and "Pay ₹947" in page
        assert client.post(invoice + "/pay").status_code == 303
        assert len(fake.links) == 2  # a new link: the refunded one is never offered again
        # The old link's paid event, delivered again, changes nothing.
        again = post_webhook(client, *fake.paid_event(link_id)).get_json()["outcome"]
        assert again.startswith("mismatch") and payment_status(client, order_id) == "pending"


def test_the_invoice_says_a_refund_is_on_its_way_until_razorpay_settles_it(make_app):
    """A refund asked of Razorpay and not yet confirmed was invisible on the invoice: it still
    read "Paid · ₹947.00" (customer probe). It now says the refund is on its way, also to a
    browser holding the page from before (a new version), until Razorpay settles it."""
    on_its_way = "A refund of ₹100.00 is on its way to you"
    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        assert pay_only_link(client, fake)["outcome"] == "paid"
        before = client.get(invoice)
        assert on_its_way not in before.text
        failing = ask_refund(app, Decimal("100"))
        page = client.get(invoice, headers={"If-None-Match": before.headers["ETag"]})
        assert page.status_code == 200 and on_its_way in page.text
        assert "Paid" in page.text  # the order is paid until the refund is made
        shown = page.headers["ETag"]
        assert post_webhook(client, *fake.fail_refund(failing)).status_code == 200
        page = client.get(invoice, headers={"If-None-Match": shown})
        assert page.status_code == 200 and on_its_way not in page.text
        processing = ask_refund(app, Decimal("100"))
        assert on_its_way in client.get(invoice).text
        assert post_webhook(client, *fake.process_refund(processing)).status_code == 200
        page = client.get(invoice).text
        assert on_its_way not in page and "Partly refunded" in page


@pytest.mark.parametrize(
    ("asked", "status_line"),
    [
        # Part refunded, then cancelled while it is on its way: only the rest is still owed.
        (Decimal("300"), "· you paid ₹947.00; the shop will refund the other ₹647.00"),
        # All of it on its way: nothing more is owed than the notice says.
        (None, "· you paid ₹947.00</span>"),
    ],
)
def test_a_cancelled_order_s_invoice_counts_a_refund_on_its_way_once(make_app, asked, status_line):
    """Cancelled with a refund asked of Razorpay and not yet confirmed, the invoice said both
    "you paid ₹947.00, which the shop will refund" and "A refund of ₹300.00 is on its way": a
    customer could read ₹1,247 (owner probe). The status line now owes only the rest."""
    from bikshop.services import orders

    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        assert pay_only_link(client, fake)["outcome"] == "paid"
        ask_refund(app, asked)
        with app.app_context():
            orders.change_status(orders.find_order(order_id), "CANCELLED", actor="admin:o@x.in")
        page = client.get(invoice).text
        assert status_line in page, page
        assert "which the shop will refund" not in page
        amount = "₹300.00" if asked else "₹947.00"
        assert f"A refund of {amount} is on its way to you" in page


def assert_refunded_whole(app) -> None:
    """The one order and its one payment are refunded, all ₹947 of them, to the paisa."""
    with app.app_context():
        order = db.session.scalars(select(Order)).one()
        payment = db.session.scalars(select(Payment)).one()
        assert (order.payment_status, order.amount_refunded, payment.amount_refunded) == (
            "refunded",
            Decimal("947.00"),
            Decimal("947.00"),
        )


def test_refunds_adding_up_to_the_payment_count_whole_on_sqlite_too(paid):
    """SQLite keeps money as a binary REAL, and the refunds were added up in SQL: ₹1.37 +
    ₹914.19 + ₹31.44 came to 947.0000000000001, so the last refund of a ₹947 payment was
    refused as exceeding it, and the order stayed partly refunded with all its money back
    (code review). Money added up in SQL is rounded to the paisa (``money_in_sql``)."""
    app, client, fake, order_id = paid
    outcomes = []
    for amount in ("1.37", "914.19", "31.44"):
        refund_id = ask_refund(app, Decimal(amount))
        outcomes.append(post_webhook(client, *fake.process_refund(refund_id)).get_json()["outcome"])
    assert outcomes == ["order partially_refunded", "order partially_refunded", "order refunded"]
    assert_refunded_whole(app)


def test_cash_returned_in_parts_adds_up_on_sqlite_too(make_app):
    """₹0.10 then ₹0.20 returned outside Razorpay were stored as 0.30000000000000004 on
    SQLite, which the next return's check for "refunds unchanged meanwhile" never matched:
    the rest could never be recorded (code review)."""
    app = make_app()
    place_order(app.test_client())
    with app.app_context():
        mark_paid_offline(db.session.scalars(select(Order)).one(), actor="admin:o@x.in")
    for amount in ("0.10", "0.20", "946.70"):
        with app.app_context():
            order = db.session.scalars(select(Order)).one()
            assert return_outside_razorpay(order, Decimal(amount), actor="admin:o@x.in")
    assert_refunded_whole(app)
