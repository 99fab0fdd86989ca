"""Cancelling an order closes its open payment links, so a cancelled order cannot be paid."""

from __future__ import annotations

from sqlalchemy import select

from bikshop.extensions import db
from bikshop.models import Order, OrderEvent, PaymentLink
from bikshop.services.orders import change_status
from tests.fake_razorpay import shop_with_open_link


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
    from tests.fake_razorpay import post_webhook

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
