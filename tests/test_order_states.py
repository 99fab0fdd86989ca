"""The order's state changes hold when another change lands between reading and writing.

Each test loads an order, lets a second connection change it behind the first one's back (as a
dashboard action from another browser or a webhook would, committed a moment earlier), then
asks for the change with the stale order in hand.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from bikshop.errors import ApiError
from bikshop.extensions import db
from bikshop.models import OrderEvent
from bikshop.services import orders
from bikshop.services.payments import mark_paid_offline
from tests.bik import get, place, sample_body


def _placed(app, client):
    public_id = place(client).get_json()["order"]["id"]
    return public_id


def _behind_its_back(app, sql: str, public_id: str) -> None:
    """Commit ``sql`` on a connection of its own, as another request would."""
    with db.engine.begin() as other:
        other.execute(text(sql), {"public_id": public_id})


def _stale(public_id: str):
    order = orders.find_order(public_id)
    assert order.status == "ORDERED"  # what this request read
    return order


@pytest.mark.parametrize(
    "change",
    [
        lambda order: orders.set_fulfillment(order, "fulfilled", actor="admin:test"),
        lambda order: orders.set_fulfillment(
            order, "partial", actor="admin:test", tracking_url="https://t.example/AWB1"
        ),
        lambda order: mark_paid_offline(order, actor="admin:test"),
    ],
    ids=["fulfilled", "tracking_link", "cash_received"],
)
def test_a_cancel_that_lands_first_wins_over_a_change_read_before_it(app, client, change):
    public_id = _placed(app, client)
    with app.test_request_context():
        order = _stale(public_id)
        _behind_its_back(
            app, "UPDATE orders SET status = 'CANCELLED' WHERE public_id = :public_id", public_id
        )
        with pytest.raises(ApiError) as refused:
            change(order)
        db.session.rollback()
    assert refused.value.code == 409 and "cancelled order" in refused.value.description
    bik = get(client, public_id).get_json()["order"]
    assert bik["status"] == "CANCELLED"
    # Nothing was paid: "voided", not "pending", which would have Bik ask for the payment.
    assert (bik["paymentStatus"], bik["fulfillmentStatus"]) == ("voided", "unfulfilled")
    assert bik["deliveryInfo"]["trackingURL"] is None


def test_a_stale_return_is_judged_on_what_was_returned_meanwhile(app, client):
    """The owner records ₹947 returned in cash on a page read before ₹100 was recorded from
    another tab. The return holds the order and reloads it (``lock_order``), so it is refused
    on the figures that hold now, naming what is left (847), and nothing is stored. Before,
    ``lock_order`` took the lock but kept the stale copy (design audit): the refusal was a
    vague "changed meanwhile" 409 resting on the UPDATE's guard alone."""
    from decimal import Decimal

    from bikshop.services.payments import return_outside_razorpay

    public_id = _placed(app, client)
    with app.test_request_context():
        mark_paid_offline(orders.find_order(public_id), actor="admin:test")
        order = orders.find_order(public_id)
        _behind_its_back(
            app,
            "UPDATE orders SET payment_status = 'partially_refunded', amount_refunded = 100 "
            "WHERE public_id = :public_id",
            public_id,
        )
        with pytest.raises(ApiError) as refused:
            return_outside_razorpay(order, Decimal("947"), actor="admin:test")
        db.session.rollback()
    assert refused.value.code == 422
    assert "847" in refused.value.description
    bik = get(client, public_id).get_json()["order"]
    assert bik["paymentStatus"] == "partially_refunded"


def test_a_fulfilment_saved_meanwhile_refuses_the_stale_page(app, client):
    """Two tabs showed "unfulfilled, no link". Tab A saves "fulfilled" with link A after tab B's
    request loaded the order but before it compared its ``seen``: B's save is the 409 that
    ``seen`` exists for, and A's link stays (design audit: the check ran on B's unlocked copy,
    so B's stale page passed and replaced the link Bik gives the customer)."""
    public_id = _placed(app, client)
    with app.test_request_context():
        order = _stale(public_id)
        page_seen = orders.fulfillment_seen(order)
        _behind_its_back(
            app,
            "UPDATE orders SET fulfillment_status = 'fulfilled', "
            "tracking_url = 'https://dtdc.in/track?cn=A1' WHERE public_id = :public_id",
            public_id,
        )
        with pytest.raises(ApiError) as refused:
            orders.set_fulfillment(
                order,
                "partial",
                actor="admin:b",
                tracking_url="https://dtdc.in/track?cn=B2",
                seen=page_seen,
            )
        db.session.rollback()
    assert refused.value.code == 409 and "changed since this page was opened" in str(
        refused.value.description
    )
    delivery = get(client, public_id).get_json()["order"]
    assert delivery["fulfillmentStatus"] == "fulfilled"
    assert delivery["deliveryInfo"]["trackingURL"] == "https://dtdc.in/track?cn=A1"


def test_lock_order_reloads_what_another_request_committed(app, client):
    """``lock_order`` promises the caller the order as the request before it committed it: the
    locking SELECT's row must be fetched for the ORM to refresh the object (it was not, and the
    caller decided on what it had read before the lock; design audit)."""
    from bikshop.services.states import lock_order

    public_id = _placed(app, client)
    with app.test_request_context():
        order = _stale(public_id)
        _behind_its_back(
            app, "UPDATE orders SET status = 'CANCELLED' WHERE public_id = :public_id", public_id
        )
        lock_order(order)
        assert order.status == "CANCELLED"
        db.session.rollback()


def test_bik_reads_a_cancelled_order_nobody_paid_as_voided_and_a_paid_one_as_paid(app, client):
    """Bik tells a customer whose paymentStatus is pending to pay; a cancelled order nobody paid
    said "pending" (Bik probe). It says "voided", Shopify's word; the stored status and the
    dashboard keep pending; a cancelled order that was paid says what was paid."""
    body = sample_body()
    unpaid = place(client, body).get_json()["order"]["id"]
    paid = _placed(app, client)
    with app.test_request_context():
        mark_paid_offline(orders.find_order(paid), actor="admin:test")
        for public_id in (unpaid, paid):
            orders.change_status(orders.find_order(public_id), "CANCELLED", actor="admin:test")
        assert orders.find_order(unpaid).payment_status == "pending"
        db.session.remove()
    for public_id, expected in ((unpaid, "voided"), (paid, "paid")):
        answer = get(client, public_id).get_json()["order"]
        assert (answer["status"], answer["paymentStatus"]) == ("CANCELLED", expected)
    # placeOrder's replay of the same draft answers the order as it is now: voided too.
    again = place(client, body)  # the unpaid order's draft again
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json()["order"]["paymentStatus"] == "voided"


def test_two_tracking_links_at_once_make_two_versions(app, client):
    """The invoice's ETag and PDF cache key on the version: each change must make its own."""
    public_id = _placed(app, client)
    with app.test_request_context():
        order = _stale(public_id)
        version = order.version
        _behind_its_back(
            app,
            "UPDATE orders SET fulfillment_status = 'fulfilled', "
            "tracking_url = 'https://t.example/A', version = version + 1 "
            "WHERE public_id = :public_id",
            public_id,
        )
        orders.set_fulfillment(
            order, "fulfilled", actor="admin:test", tracking_url="https://t.example/B"
        )
        assert order.version == version + 2
        assert order.tracking_url == "https://t.example/B"
        db.session.remove()
    assert get(client, public_id).get_json()["order"]["deliveryInfo"] == {
        "trackingURL": "https://t.example/B"
    }


def _timeline(public_id: str) -> list[tuple[str, str]]:
    order = orders.find_order(public_id)
    return [
        (event.message, event.actor)
        for event in db.session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id)
        )
    ]


def test_delivering_an_unfulfilled_order_also_makes_it_fulfilled(app, client):
    """Bik must never tell the customer 'delivered' and 'unfulfilled' at once."""
    public_id = _placed(app, client)
    with app.test_request_context():
        assert orders.change_status(orders.find_order(public_id), "DELIVERED", actor="admin:a@b.c")
        assert _timeline(public_id)[-2:] == [
            ("Status changed to delivered", "admin:a@b.c"),
            ("Fulfilment changed to fulfilled, as the order is delivered", "admin:a@b.c"),
        ]
        db.session.remove()
    bik = get(client, public_id).get_json()["order"]
    assert (bik["status"], bik["fulfillmentStatus"]) == ("DELIVERED", "fulfilled")


def test_delivering_a_fulfilled_order_adds_no_fulfilment_entry(app, client):
    public_id = _placed(app, client)
    with app.test_request_context():
        orders.set_fulfillment(orders.find_order(public_id), "fulfilled", actor="admin:a@b.c")
        orders.change_status(orders.find_order(public_id), "DELIVERED", actor="admin:a@b.c")
        assert [m for m, _ in _timeline(public_id)][1:] == [
            "Fulfilment changed to fulfilled",
            "Status changed to delivered",
        ]


@pytest.mark.parametrize("mistake", ["fulfilled", "partial"])
def test_a_fulfilment_mis_click_is_undone_while_the_order_is_open(app, client, mistake):
    public_id = _placed(app, client)
    with app.test_request_context():
        orders.set_fulfillment(orders.find_order(public_id), mistake, actor="admin:a@b.c")
        orders.change_status(orders.find_order(public_id), "IN PROGRESS", actor="admin:a@b.c")
        undone = orders.set_fulfillment(
            orders.find_order(public_id), "unfulfilled", actor="admin:a@b.c"
        )
        assert undone
        assert ("Status changed to in progress", "admin:a@b.c") in _timeline(public_id)
        assert _timeline(public_id)[-1] == (
            "Fulfilment changed to unfulfilled",
            "admin:a@b.c",
        )
        db.session.remove()
    assert get(client, public_id).get_json()["order"]["fulfillmentStatus"] == "unfulfilled"


def test_a_delivered_order_stays_fulfilled_even_when_delivered_a_moment_earlier(app, client):
    """The undo was read while the order was open; the delivery committed first wins."""
    public_id = _placed(app, client)
    with app.test_request_context():
        orders.set_fulfillment(orders.find_order(public_id), "fulfilled", actor="admin:a@b.c")
        order = _stale(public_id)
        _behind_its_back(
            app, "UPDATE orders SET status = 'DELIVERED' WHERE public_id = :public_id", public_id
        )
        with pytest.raises(ApiError) as refused:
            orders.set_fulfillment(order, "unfulfilled", actor="admin:a@b.c")
        db.session.rollback()
    assert refused.value.code == 409
    assert refused.value.description == (
        "Cannot change fulfilment from fulfilled to unfulfilled; "
        "the order is delivered, so it stays fulfilled"
    )
    bik = get(client, public_id).get_json()["order"]
    assert (bik["status"], bik["fulfillmentStatus"]) == ("DELIVERED", "fulfilled")
