"""Cancelling an order, or its being paid, closes its open payment links, so a cancelled order
cannot be paid and a paid one cannot be paid twice."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
from sqlalchemy import select

from bikshop.extensions import db
from bikshop.models import Order, OrderEvent, PaymentLink
from bikshop.services.orders import change_status
from tests.fake_razorpay import (
    FakeRazorpay,
    path_of,
    place_order,
    post_webhook,
    razorpay_settings,
    shop_with_open_link,
)


def _cancel(app, order_id: str) -> None:
    with app.app_context():
        order = db.session.scalars(select(Order).where(Order.public_id == order_id)).one()
        assert change_status(order, "CANCELLED", actor="admin:owner@example.com")


def _kinds(app) -> list[str]:
    with app.app_context():
        return [e.kind for e in db.session.scalars(select(OrderEvent).order_by(OrderEvent.id))]


def test_cancelling_an_order_cancels_its_open_link_at_razorpay(make_app):
    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        plink = fake.only_link()["id"]

        _cancel(app, order_id)

        assert fake.links[plink]["status"] == "cancelled"
        with app.app_context():
            (link,) = db.session.scalars(select(PaymentLink)).all()
            assert link.status == "cancelled"
        assert "payment_link_cancelled" in _kinds(app)
        page = client.get(invoice).get_data(as_text=True)
        assert f'action="{invoice}/pay"' not in page


def test_a_pay_button_left_open_on_an_order_cancelled_since_says_nothing_is_owed(make_app):
    """It led back to the invoice with no word of why nothing happened (customer probe)."""
    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        _cancel(app, order_id)
        again = client.post(invoice + "/pay")
        assert again.status_code == 303
        assert again.headers["Location"] == invoice + "?paid=cancelled"
        page = client.get(again.headers["Location"]).get_data(as_text=True)
        assert "This order was cancelled: nothing was charged, and nothing is owed." in page
        assert len(fake.links) == 1
        # The same address on an open order says nothing of the kind.
        _, other = place_order(client)
        assert "was cancelled" not in client.get(other + "?paid=cancelled").text


def test_a_cancelled_order_whose_money_razorpay_holds_is_not_said_to_owe_nothing(make_app):
    """₹500 paid on the ₹947 link settled nothing, then the order was cancelled: a stale Pay
    tap must not read "nothing was charged" (review probe); the page says the shop will
    refund what it received."""
    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        link_id = fake.only_link()["id"]
        fake.pay(link_id, amount_paid=50000, deliver=False)
        outcome = post_webhook(client, *fake.paid_event(link_id)).get_json()["outcome"]
        assert outcome.startswith("mismatch")
        _cancel(app, order_id)
        again = client.post(invoice + "/pay")
        page = client.get(again.headers["Location"]).text
        assert "nothing was charged" not in page
        assert "We also received ₹500.00 from you through a payment link" in page
        assert "the shop will refund it to you" in page


def test_razorpay_down_while_cancelling_keeps_the_cancel_and_says_the_link_is_open(make_app):
    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        fake.stop()

        _cancel(app, order_id)

        with app.app_context():
            order = db.session.scalars(select(Order)).one()
            (link,) = db.session.scalars(select(PaymentLink)).all()
            assert (order.status, link.status) == ("CANCELLED", "created")
        assert "payment_link_cancel_failed" in _kinds(app)


def test_cash_received_cancels_the_open_link_so_the_customer_cannot_pay_twice(make_app):
    from bikshop.services.payments import mark_paid_offline

    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        plink = fake.only_link()["id"]

        with app.app_context():
            order = db.session.scalars(select(Order)).one()
            assert mark_paid_offline(order, actor="admin:owner@example.com")
            assert not mark_paid_offline(order, actor="admin:owner@example.com")  # a repeat

        assert fake.links[plink]["status"] == "cancelled"
        cancels = [path for method, path, _ in fake.calls if path.endswith("/cancel")]
        assert cancels == [f"/v1/payment_links/{plink}/cancel"]
        with app.app_context():
            (link,) = db.session.scalars(select(PaymentLink)).all()
            assert (link.order.payment_status, link.status) == ("paid", "cancelled")
        assert "payment_link_cancelled" in _kinds(app)
        assert f'action="{invoice}/pay"' not in client.get(invoice).get_data(as_text=True)


def test_a_payment_after_cancelling_advises_a_refund_not_reopening(make_app):
    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        plink = fake.only_link()["id"]
        fake.stop()  # the link cannot be cancelled, and the customer pays on it
        _cancel(app, order_id)
        fake.start()
        fake.pay(plink, deliver=False)
        assert post_webhook(client, *fake.paid_event(plink)).status_code == 200
        with app.app_context():
            (flag,) = db.session.scalars(
                select(OrderEvent).where(OrderEvent.kind == "paid_after_cancel")
            ).all()
        assert "refund" in flag.message and "reopen" not in flag.message  # CANCELLED is final


def _replacement_link(client, fake, invoice: str) -> tuple[str, str]:
    """Link A expires (Razorpay's webhook says so) and the customer's next tap on Pay makes
    link B: (A, B)."""
    first = fake.only_link()["id"]
    expired = fake.event("payment_link.expired", payment_link=fake.expire(first))
    assert post_webhook(client, *expired).status_code == 200
    assert client.post(invoice + "/pay").status_code == 303
    return first, fake.last_link()["id"]


@pytest.mark.parametrize("door", ["webhook", "redirect"])
def test_paid_on_an_expired_link_cancels_its_replacement_so_it_takes_no_second_payment(
    make_app, door
):
    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        first, second = _replacement_link(client, fake, invoice)

        callback = fake.pay(first, deliver=False)  # paid at Razorpay just before it expired
        if door == "webhook":
            assert post_webhook(client, *fake.paid_event(first)).get_json()["outcome"] == "paid"
        else:  # the redirect back, confirmed by fetching the link
            assert "Paid. Thank you" in client.get(path_of(callback)).get_data(as_text=True)

        assert fake.links[second]["status"] == "cancelled"
        with app.app_context():
            links = db.session.scalars(select(PaymentLink).order_by(PaymentLink.id)).all()
            assert [link.status for link in links] == ["paid", "cancelled"]
            assert links[0].order.payment_status == "paid"
            [cancelled] = db.session.scalars(
                select(OrderEvent).where(OrderEvent.kind == "payment_link_cancelled")
            ).all()
            # The order is paid: no new link will be made, so the timeline does not say so.
            assert cancelled.message == f"Payment link {second} cancelled"


def test_razorpay_down_after_the_payment_keeps_it_paid_and_says_the_replacement_is_open(make_app):
    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        first, second = _replacement_link(client, fake, invoice)
        fake.pay(first, deliver=False)
        fake.stop()

        assert post_webhook(client, *fake.paid_event(first)).get_json()["outcome"] == "paid"

        with app.app_context():
            order = db.session.scalars(select(Order)).one()
            links = db.session.scalars(select(PaymentLink).order_by(PaymentLink.id)).all()
            assert (order.payment_status, [link.status for link in links]) == (
                "paid",
                ["paid", "created"],
            )
            (failed,) = db.session.scalars(
                select(OrderEvent).where(OrderEvent.kind == "payment_link_cancel_failed")
            ).all()
        assert second in failed.message


def test_a_slow_razorpay_keeps_the_webhook_within_its_5_s_and_reconcile_cancels_the_link(
    make_app,
):
    """Paying the order cancels its other open link at Razorpay before the webhook answers: with
    Razorpay slow (6 s) and its timeout 20 s, the answer took 6 s and more (one call per open
    link), and Razorpay counts an answer after 5 s as failed (payments probe). The webhook's
    calls now get 3 s in all; the link left open is cancelled by reconcile-payments."""
    with shop_with_open_link(make_app) as (app, client, fake, _, invoice):
        first, second = _replacement_link(client, fake, invoice)
        fake.pay(first, deliver=False)
        app.config["RAZORPAY_TIMEOUT"] = 20
        fake.delay = 6

        started = time.monotonic()
        answer = post_webhook(client, *fake.paid_event(first))
        took = time.monotonic() - started

        assert answer.get_json()["outcome"] == "paid" and took < 4.5, took
        assert fake.links[second]["status"] == "created"
        with app.app_context():
            (failed,) = db.session.scalars(
                select(OrderEvent).where(OrderEvent.kind == "payment_link_cancel_failed")
            ).all()
            assert second in failed.message
        fake.delay = 0
        result = app.test_cli_runner().invoke(args=["reconcile-payments", "--older-than", "0"])
        assert result.exit_code == 0, result.output
        assert fake.links[second]["status"] == "cancelled"


def test_reconcile_finding_a_link_paid_cancels_the_order_s_other_open_link(make_app):
    from datetime import timedelta

    from bikshop.models.types import utcnow

    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        first = fake.only_link()["id"]
        with app.app_context():  # about to expire: the next tap makes a new link beside it
            db.session.scalars(select(PaymentLink)).one().expire_by = utcnow() + timedelta(
                minutes=5
            )
            db.session.commit()
        assert client.post(invoice + "/pay").status_code == 303
        second = fake.last_link()["id"]
        fake.pay(first, deliver=False)  # and its webhook is lost

        result = app.test_cli_runner().invoke(args=["reconcile-payments", "--older-than", "0"])

        assert f"{first}: paid" in result.output
        assert fake.links[second]["status"] == "cancelled"
        with app.app_context():
            links = db.session.scalars(select(PaymentLink).order_by(PaymentLink.id)).all()
            assert [link.status for link in links] == ["paid", "cancelled"]


def test_back_from_paying_a_cancelled_order_the_customer_is_told_it_will_be_refunded(make_app):
    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        link = fake.only_link()["id"]
        _cancel(app, order_id)  # the payment was already under way at Razorpay
        page = client.get(path_of(fake.pay(link, deliver=False))).get_data(as_text=True)
        assert "this order was cancelled: the shop will refund it" in page
        assert "Paid. Thank you" not in page
        assert "paid_after_cancel" in _kinds(app)


def test_back_from_a_second_payment_the_customer_is_told_it_is_one_too_many(make_app):
    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        first, second = _replacement_link(client, fake, invoice)
        fake.pay(first, deliver=False)  # the order is paid on the first link
        assert post_webhook(client, *fake.paid_event(first)).get_json()["outcome"] == "paid"
        page = client.get(path_of(fake.pay(second, deliver=False))).get_data(as_text=True)
        assert "already paid, so this payment is one too many" in page
        assert "Paid. Thank you" not in page
        assert "payment_extra" in _kinds(app)


@contextlib.contextmanager
def _tap_pay_while_razorpay_holds_the_link(app, fake, invoice: str):
    """The customer taps Pay, and Razorpay takes its time over the link: inside the block,
    Razorpay has the create request and has not answered; on leaving it, Razorpay answers and
    the tap finishes. Yields the list that then holds the tap's answer."""

    def creates() -> int:
        return sum(1 for call in fake.calls if call[1] == "/v1/payment_links")

    before = creates()
    fake.hold_creates = threading.Event()
    answers = []
    customer = threading.Thread(
        target=lambda: answers.append(app.test_client().post(invoice + "/pay"))
    )
    customer.start()
    deadline = time.monotonic() + 5
    while creates() == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert creates() == before + 1  # Razorpay has the create request
    try:
        yield answers
    finally:
        fake.hold_creates.set()
        customer.join(timeout=10)


def test_an_order_paid_while_razorpay_makes_another_link_gets_that_link_cancelled(make_app):
    """The customer taps Pay again while the webhook for an earlier link's payment is being
    applied: the webhook finds no other link to close yet, and the link the tap stores a moment
    later stayed open at Razorpay, payable a second time (payments probe, 11 of 33 races)."""
    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        first = fake.only_link()["id"]
        expired = fake.event("payment_link.expired", payment_link=fake.expire(first))
        assert post_webhook(client, *expired).status_code == 200
        with _tap_pay_while_razorpay_holds_the_link(app, fake, invoice) as answers:
            fake.pay(first, deliver=False)  # paid at Razorpay just before it expired
            outcome = post_webhook(client, *fake.paid_event(first)).get_json()["outcome"]
            assert outcome == "paid"
        second = fake.last_link()
        assert second["id"] != first and second["status"] == "cancelled"
        with app.app_context():
            stored = {
                row.razorpay_id: row.status for row in db.session.scalars(select(PaymentLink))
            }
        assert stored == {first: "paid", second["id"]: "cancelled"}
        assert answers[0].status_code == 303
        assert answers[0].headers["Location"].endswith("?paid=already")


def test_an_order_cancelled_while_razorpay_makes_its_link_gets_that_link_cancelled(make_app):
    """The owner cancels while the customer's Pay waits on Razorpay: the cancel finds no link
    to close yet, and the link stored a moment later must not stay open at Razorpay."""
    with FakeRazorpay() as fake:
        app = make_app(**razorpay_settings(fake))
        order_id, invoice = place_order(app.test_client())
        with _tap_pay_while_razorpay_holds_the_link(app, fake, invoice) as answers:
            _cancel(app, order_id)
        (link,) = fake.links.values()
        assert link["status"] == "cancelled"
        with app.app_context():
            (stored,) = db.session.scalars(select(PaymentLink)).all()
            assert stored.status == "cancelled"
        assert answers[0].status_code == 303
        # Not to the link: to the invoice, which says the order was cancelled.
        assert answers[0].headers["Location"].endswith(invoice + "?paid=cancelled")


def test_reconcile_cancels_a_link_left_open_on_a_cancelled_order(make_app):
    """Razorpay was down when the order was cancelled (or the worker was killed after the
    payment committed): its link stayed open at Razorpay, and reconcile-payments, which looked
    only at pending orders, never closed it (payments probe). It now does, once it can."""
    with shop_with_open_link(make_app) as (app, client, fake, order_id, invoice):
        plink = fake.only_link()["id"]
        fake.stop()
        _cancel(app, order_id)
        fake.start()  # the same port: Razorpay is back
        result = app.test_cli_runner().invoke(args=["reconcile-payments", "--older-than", "0"])
        assert result.exit_code == 0, result.output
        assert f"{plink}: link cancelled" in result.output
        assert fake.links[plink]["status"] == "cancelled"
        with app.app_context():
            (link,) = db.session.scalars(select(PaymentLink)).all()
            assert link.status == "cancelled"
        again = app.test_cli_runner().invoke(args=["reconcile-payments", "--older-than", "0"])
        assert again.exit_code == 0 and f"{plink}: link cancelled" not in again.output
