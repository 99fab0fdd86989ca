"""Cancelling an order closes its open payment links, so a cancelled order cannot be paid."""

from __future__ import annotations

from sqlalchemy import select

from bikshop.extensions import db
from bikshop.models import Order, OrderEvent, PaymentLink
from bikshop.services.orders import change_status
from tests.fake_razorpay import FakeRazorpay, place_order, razorpay_settings


def _cancel(app, order_id: str) -> None:
    with app.app_context():
        order = db.session.scalars(select(Order).where(Order.public_id == order_id)).one()
        assert change_status(order, "CANCELLED", actor="admin:owner@example.com")


def _kinds(app) -> list[str]:
    with app.app_context():
        return [e.kind for e in db.session.scalars(select(OrderEvent).order_by(OrderEvent.id))]


def test_cancelling_an_order_cancels_its_open_link_at_razorpay(make_app):
    with FakeRazorpay() as fake:
        app = make_app(**razorpay_settings(fake))
        client = app.test_client()
        order_id, invoice = place_order(client)
        assert client.post(invoice + "/pay").status_code == 303
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
    with FakeRazorpay() as fake:
        app = make_app(**razorpay_settings(fake))
        client = app.test_client()
        order_id, invoice = place_order(client)
        assert client.post(invoice + "/pay").status_code == 303
        fake.stop()

        _cancel(app, order_id)

        with app.app_context():
            order = db.session.scalars(select(Order)).one()
            (link,) = db.session.scalars(select(PaymentLink)).all()
            assert (order.status, link.status) == ("CANCELLED", "created")
        assert "payment_link_cancel_failed" in _kinds(app)
