"""Amounts reach Razorpay in each currency's own minor unit (¥947 is 947, KWD 9.5 is 9500), and an
order Razorpay cannot take in its currency gets a clear page instead of a payment link."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from bikshop.extensions import db
from bikshop.models import Order, PaymentLink
from bikshop.money import NotPayable, from_minor_units, to_minor_units
from bikshop.services.payments import refund
from tests.fake_razorpay import (
    FakeRazorpay,
    pay_only_link,
    payment_status,
    place_order,
    post_webhook,
    razorpay_settings,
    shop_with_open_link,
)


@pytest.mark.parametrize(
    "amount, currency, minor",
    [
        ("947", "INR", 94700),
        ("947.5", "INR", 94750),
        ("947", "JPY", 947),
        ("9.5", "KWD", 9500),
        ("9.51", "BHD", 9510),
        ("12.34", "usd", 1234),
    ],
)
def test_minor_units_follow_the_currency_both_ways(amount, currency, minor):
    assert to_minor_units(Decimal(amount), currency) == minor
    assert from_minor_units(minor, currency) == Decimal(amount)


@pytest.mark.parametrize(
    "amount, currency",
    [("947.5", "JPY"), ("0.005", "INR"), ("1.001", "KWD"), ("947", "XYZ"), ("947", "")],
)
def test_an_amount_razorpay_cannot_take_is_refused_never_rounded(amount, currency):
    with pytest.raises(NotPayable):
        to_minor_units(Decimal(amount), currency)


def _links_made(fake) -> list[dict]:
    return [body for method, path, body in fake.calls if path == "/v1/payment_links"]


@pytest.mark.parametrize(
    "currency, total, minor",
    [("JPY", "947", 947), ("KWD", "947", 947000), ("USD", "947", 94700)],
)
def test_pay_sends_the_total_in_the_currencys_own_minor_unit(make_app, currency, total, minor):
    with shop_with_open_link(make_app, currency=currency) as (app, client, fake, order_id, _):
        assert [(b["amount"], b["currency"]) for b in _links_made(fake)] == [(minor, currency)]
        (link,) = db_rows(app, PaymentLink)
        assert (link.amount, link.currency) == (Decimal(total), currency)
        # The webhook's amount check converts the same way: the payment settles the order.
        assert pay_only_link(client, fake)["outcome"] == "paid"
        assert payment_status(client, order_id) == "paid"


def test_a_refund_in_yen_asks_razorpay_for_yen(make_app):
    with FakeRazorpay() as fake:
        app = make_app(**razorpay_settings(fake))
        client = app.test_client()
        _, invoice = place_order(client, currency="JPY")
        client.post(invoice + "/pay")
        link_id = fake.only_link()["id"]
        fake.pay(link_id, deliver=False)
        post_webhook(client, *fake.paid_event(link_id))
        with app.app_context():
            refund(db.session.scalars(select(Order)).one(), Decimal("100"), actor="admin")
        assert [body["amount"] for _, path, body in fake.calls if path.endswith("/refund")] == [100]


def db_rows(app, model):
    with app.app_context():
        return db.session.scalars(select(model).order_by(model.id)).all()


@pytest.mark.parametrize(
    "changes, says",
    [
        ({"currency": "VND"}, "does not take payments in VND"),  # ISO, not at Razorpay
        ({"currency": "XOF"}, "does not take payments in XOF"),  # a real X code: stored
        ({"currency": "JPY", "shippingCharge": 49.5, "total": 947.5}, "more decimals than JPY"),
    ],
)
def test_an_order_razorpay_cannot_take_gets_a_clear_page_and_no_link(make_app, changes, says):
    with FakeRazorpay() as fake:
        app = make_app(**razorpay_settings(fake))
        client = app.test_client()
        order_id, invoice = place_order(client, **changes)
        page = client.get(invoice).get_data(as_text=True)
        assert f'action="{invoice}/pay"' not in page  # no Pay button to begin with
        response = client.post(invoice + "/pay")  # a stale page, or a hand-made request
        text = response.get_data(as_text=True)
        assert response.status_code == 409 and "text/html" in response.content_type
        assert "Online payment isn't available for this order" in text and says in text
        assert "Nothing was charged" in text
        assert fake.calls == [] and db_rows(app, PaymentLink) == []
        assert payment_status(client, order_id) == "pending"


@pytest.mark.parametrize(
    "currency, methods",
    [("INR", "UPI, cards, netbanking and wallets"), ("USD", "international cards")],
)
def test_the_pay_button_names_the_ways_to_pay_in_that_currency(make_app, currency, methods):
    """UPI, netbanking and Indian wallets take rupees only: a dollar order says cards."""
    with FakeRazorpay() as fake:
        client = make_app(**razorpay_settings(fake)).test_client()
        _, invoice = place_order(client, currency=currency)
        page = client.get(invoice).get_data(as_text=True)
        assert f"Secure payment by Razorpay: {methods}." in page
