"""placeOrder is idempotent on draftOrderId: Bik delivers at least once."""

from __future__ import annotations

import json

from sqlalchemy import select

from bikshop.extensions import db
from bikshop.models import Order
from bikshop.services import payments
from tests.bik import DELETE, assert_error_shape, place, sample_body, set_in, stored_state


def test_same_draft_twice_returns_the_same_order(app, client):
    body = sample_body()
    first = place(client, body)
    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    after_first = stored_state(app)
    second = place(client, body)
    assert second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json() == first.get_json()
    assert stored_state(app) == after_first
    assert after_first["orders"] == 1 and after_first["counter values"] == {"order": 1001}


def test_a_retry_with_the_same_content_in_another_spelling_is_the_same_order(client):
    body = sample_body()
    first = place(client, body).get_json()["order"]
    respelled = json.dumps(body, indent=4, sort_keys=True).replace(
        '"quantity": 2', '"quantity": 2.0'
    )
    respelled = respelled.replace('"Skin Renew Cream"', '"  Skin Renew Cream "')
    for raw in (respelled, json.dumps({**body, "bikRetry": 2})):
        again = client.post(
            "/bik/placeOrder", data=raw, headers={"Content-Type": "application/json"}
        )
        assert again.status_code == 200
        assert again.get_json()["order"]["id"] == first["id"]


def test_a_retry_that_changes_nothing_stored_is_the_same_order(app, client):
    """What the order stores is what a retry must repeat: an email's case, the currency as ""
    or "inr" or "INR", an empty variantName or none, the order's own name are not differences."""
    body = sample_body(email="Buyer@Example.com", currency="")
    body["order"]["items"][0]["variantName"] = ""
    first = place(client, body).get_json()["order"]
    after_first = stored_state(app)
    for change in (
        {"email": "buyer@example.com"},
        {"currency": "inr"},
        {"currency": None},
        {"currency": "INR"},
        {"name": "#1001"},
    ):
        again = place(client, sample_body(body["draftOrderId"], **{**body["order"], **change}))
        assert again.status_code == 200, (change, again.get_json())
        assert again.get_json()["order"] == first
    no_variant = json.loads(json.dumps(body))
    no_variant["order"]["items"][0]["variantName"] = None
    assert place(client, no_variant).get_json()["order"] == first
    assert stored_state(app) == after_first


def _spellings_are_one_order(app, client, body: dict, path: str, spellings) -> None:
    """``body`` placed, then again with ``path`` set to each of ``spellings``: the same order,
    answered as a replay, nothing stored changed."""
    first = place(client, body).get_json()["order"]
    after_first = stored_state(app)
    for value in spellings:
        again = json.loads(json.dumps(body))
        set_in(again, path, value)
        answer = place(client, again)
        assert answer.status_code == 200 and answer.get_json()["order"] == first, value
        assert answer.headers["Idempotent-Replayed"] == "true"
    assert stored_state(app) == after_first


def test_no_discount_as_0_null_or_absent_is_the_same_order(app, client):
    body = sample_body(discount=0, total=1047)
    _spellings_are_one_order(app, client, body, "order.discount", (None, DELETE))


def test_an_address_line_as_empty_text_null_or_absent_is_the_same_order(app, client):
    body = sample_body()
    body["order"]["address"]["address2"] = ""
    _spellings_are_one_order(app, client, body, "order.address.address2", (None, DELETE))
    moved = json.loads(json.dumps(body))
    set_in(moved, "order.address.address2", "Flat 4")
    assert place(client, moved).status_code == 409


def test_a_retry_of_an_order_fingerprinted_with_blank_address_lines_is_the_same_order(app, client):
    """Orders placed on 2026-12-02 and 12-03 hashed an address line sent as "" as it came; a
    retry that straddles the upgrade must not become a 409."""
    from bikshop.bik.schemas import PlaceOrderRequest
    from bikshop.services.orders import _columns, fingerprint

    body = sample_body()
    body["order"]["address"]["address2"] = ""
    first = place(client, body).get_json()["order"]
    with app.app_context():
        order = db.session.scalars(select(Order).where(Order.public_id == first["id"])).one()
        with app.test_request_context():
            columns, items = _columns(PlaceOrderRequest().load(body), json.dumps(body), "INR")
            old = fingerprint(columns, items, blank_address_lines=True)
        assert old != order.request_fingerprint  # the rules differ for this body
        order.request_fingerprint = old
        db.session.commit()
        db.session.remove()
    again = place(client, body)
    assert again.status_code == 200 and again.get_json()["order"]["id"] == first["id"]
    changed = sample_body(body["draftOrderId"], phoneNumber="+919999999999")
    assert place(client, changed).status_code == 409


def test_a_retry_of_an_order_fingerprinted_the_old_way_is_still_the_same_order(app, client):
    """Orders placed before 2026-12-03 hold a hash of the validated body as it came; a retry
    that straddles the upgrade must not become a 409."""
    from bikshop.bik.schemas import PlaceOrderRequest
    from bikshop.services.orders import _fingerprint_before_2026_12

    body = sample_body()
    first = place(client, body).get_json()["order"]
    with app.app_context():
        order = db.session.scalars(select(Order).where(Order.public_id == first["id"])).one()
        with app.test_request_context():
            order.request_fingerprint = _fingerprint_before_2026_12(PlaceOrderRequest().load(body))
        db.session.commit()
        db.session.remove()
    again = place(client, body)
    assert again.status_code == 200 and again.get_json()["order"]["id"] == first["id"]
    changed = sample_body(body["draftOrderId"], phoneNumber="+919999999999")
    assert place(client, changed).status_code == 409


def test_a_retry_of_a_free_order_stored_pending_before_the_upgrade_is_the_same_order(app, client):
    """A ₹0 order placed before 2026-12-07 was stored pending (and fingerprinted so); now it is
    placed paid, and a retry that straddles the upgrade must not become a 409."""
    from bikshop.bik.schemas import PlaceOrderRequest
    from bikshop.services.orders import _columns, fingerprint

    body = sample_body()
    money = body["order"]
    money["discount"], money["total"] = money["subTotal"] + money["shippingCharge"], 0
    first = place(client, body).get_json()["order"]
    assert first["paymentStatus"] == "paid"
    with app.app_context():
        order = db.session.scalars(select(Order).where(Order.public_id == first["id"])).one()
        with app.test_request_context():
            columns, items = _columns(PlaceOrderRequest().load(body), json.dumps(body), "INR")
            old = fingerprint(columns | {"payment_status": "pending"}, items)
        order.request_fingerprint, order.payment_status, order.paid_at = old, "pending", None
        db.session.commit()
        db.session.remove()
    again = place(client, body)
    assert again.status_code == 200 and again.get_json()["order"]["id"] == first["id"]
    assert again.get_json()["order"]["paymentStatus"] == "pending"  # as stored: unchanged
    changed = sample_body(body["draftOrderId"], phoneNumber="+919999999999")
    changed["order"]["discount"], changed["order"]["total"] = money["discount"], 0
    assert place(client, changed).status_code == 409


def test_same_draft_with_a_different_body_is_a_409_and_changes_nothing(app, client):
    """The 409 names each field that differs with the value placed and the value sent now (in
    Bik's JSON terms, a long text cut), so whoever reads Bik's logs sees what changed."""
    body = sample_body()
    placed = place(client, body).get_json()["order"]
    before = stored_state(app)
    changed = json.loads(json.dumps(body))
    changed["order"]["items"][0]["quantity"] = 3
    changed["order"]["subTotal"] = 1497
    changed["order"]["total"] = 1446
    moved = json.loads(json.dumps(body))
    moved["order"]["address"]["city"] = "Mysuru"
    moved["order"]["phoneNumber"] = "+91 98765 43210"  # the same number, written another way
    more = json.loads(json.dumps(body))
    more["order"]["items"].append({**body["order"]["items"][0], "quantity": 1})
    more["order"]["shippingCharge"], more["order"]["subTotal"] = 49.5, 1497
    more["order"]["total"] = 1446.5
    more["order"]["address"]["address1"] = "Flat\t" + "9" * 100  # a tab: quoted as \t
    gone = json.loads(json.dumps(body))
    gone["order"]["address"] = None
    for different, found in (
        (
            changed,
            [("order.subTotal", "998", "1497"), ("order.total", "947", "1446"),
             ("order.items[0].quantity", "2", "3")],
        ),
        ({**body, "paymentPending": False}, [("paymentPending", "true", "false")]),
        (
            sample_body(body["draftOrderId"], email="someone@else.example"),
            [("order.email", '"buyer@example.com"', '"someone@else.example"')],
        ),
        (
            moved,
            [("order.phoneNumber", '"+919876543210"', '"+91 98765 43210"'),
             ("order.address.city", '"Bengaluru"', '"Mysuru"')],
        ),
        (
            more,
            [("order.subTotal", "998", "1497"), ("order.shippingCharge", "49", "49.5"),
             ("order.total", "947", "1446.5"),
             ("order.address.address1", json.dumps(body["order"]["address"]["address1"]),
              '"Flat\\t' + "9" * 54 + '…"'),
             ("order.items", "1 item", "2 items")],
        ),
        (gone, [("order.address", "an address", "no address")]),
    ):  # fmt: skip
        named = [name for name, _, _ in found]
        response = place(client, different)
        error = assert_error_shape(response, 409)
        assert error["code"] == "draft_conflict"
        assert body["draftOrderId"] in error["message"] and placed["id"] in error["message"]
        assert f"({', '.join(named)} differ" in error["message"]
        assert error["fields"] == [
            {"field": "draftOrderId", "message": f"already placed as {placed['id']}"}
        ] + [
            {"field": name, "message": f"differs from {placed['id']} as placed: {a} then, {b} now"}
            for name, a, b in found
        ]
        assert stored_state(app) == before
    current = client.post("/bik/getOrder", json={"orderId": placed["id"]}).get_json()["order"]
    assert current == placed


def test_a_409_names_no_field_when_the_difference_is_in_an_earlier_rules_record(app, client):
    """An order fingerprinted by a rule no retry matches any more (none today: simulated): the
    409 says the body differs without blaming a field that does not (it named paymentPending;
    review probe)."""
    from sqlalchemy import update

    body = sample_body()
    placed = place(client, body).get_json()["order"]
    with app.app_context():
        db.session.execute(update(Order).values(request_fingerprint="0" * 64))
        db.session.commit()
    error = assert_error_shape(place(client, body), 409)
    assert error["message"].endswith("with a different body")
    assert error["fields"] == [
        {"field": "draftOrderId", "message": f"already placed as {placed['id']}"}
    ]


def test_a_409_names_payment_pending_whatever_the_payment_status_is_now(app, client):
    """The 409 named no field for a paid order asked again as pending, nor for an order placed
    pending, paid since, asked again as paid (wire probe): the status the order was placed
    with is read back from its fingerprint, not from its payment status now."""
    paid = sample_body()
    paid["paymentPending"] = False
    placed = place(client, paid).get_json()["order"]
    error = assert_error_shape(place(client, {**paid, "paymentPending": True}), 409)
    assert [f["field"] for f in error["fields"]] == ["draftOrderId", "paymentPending"]
    assert error["message"].endswith("(paymentPending differs)")
    pending = sample_body()
    placed = place(client, pending).get_json()["order"]
    with app.app_context():
        order = db.session.scalars(select(Order).where(Order.public_id == placed["id"])).one()
        payments.mark_paid_offline(order, actor="test")
        db.session.remove()
    assert place(client, pending).status_code == 200  # the same body: a replay, now paid
    error = assert_error_shape(place(client, {**pending, "paymentPending": False}), 409)
    assert [f["field"] for f in error["fields"]] == ["draftOrderId", "paymentPending"]


def test_payment_pending_false_places_a_paid_order(app, client):
    body = sample_body()
    body["paymentPending"] = False
    order = place(client, body).get_json()["order"]
    assert order["paymentStatus"] == "paid"
    with app.app_context():
        stored = db.session.scalars(select(Order)).one()
        assert stored.payment_status == "paid" and stored.paid_at is not None
        db.session.remove()
    assert place(client, body).get_json()["order"]["paymentStatus"] == "paid"


def test_a_replay_answers_with_the_order_as_it_is_now(app, client):
    body = sample_body()
    placed = place(client, body).get_json()["order"]
    with app.app_context():
        order = db.session.scalars(select(Order)).one()
        payments.mark_paid_offline(order, actor="test")
        db.session.remove()
    replay = place(client, body)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["order"]["id"] == placed["id"]
    assert replay.get_json()["order"]["paymentStatus"] == "paid"


def test_different_drafts_with_the_same_content_are_different_orders(client):
    first = place(client, sample_body()).get_json()["order"]
    second = place(client, sample_body()).get_json()["order"]
    assert (first["id"], second["id"]) == ("ORD-1001", "ORD-1002")
