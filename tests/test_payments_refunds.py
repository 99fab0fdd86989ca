"""Refunds whose webhook never came: ``reconcile-payments`` asks Razorpay about every refund
still pending and settles it as ``refund.processed`` or ``refund.failed`` would have (fake
Razorpay over real HTTP through the SDK, real database)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from bikshop.extensions import db
from bikshop.models import Order, Refund
from bikshop.services.payments import refund
from tests.fake_razorpay import (
    FakeRazorpay,
    payment_status,
    place_order,
    post_webhook,
    razorpay_settings,
)


@pytest.fixture
def paid(make_app):
    """bikshop with one order paid through the fake Razorpay (its webhook delivered)."""
    with FakeRazorpay() as fake:
        app = make_app(**razorpay_settings(fake))
        client = app.test_client()
        order_id, invoice = place_order(client)
        assert client.post(invoice + "/pay").status_code == 303
        link_id = fake.only_link()["id"]
        fake.pay(link_id, deliver=False)
        assert post_webhook(client, *fake.paid_event(link_id)).get_json()["outcome"] == "paid"
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
