"""Bik's published sample request gives Bik's published response shape, field by field."""

import json
import re
from decimal import Decimal

from sqlalchemy import select

from bikshop.extensions import db
from bikshop.models import Order, OrderEvent
from bikshop.services import orders, payments
from tests.bik import get, place, sample_body

# The guide's BikOrder, BikOrderItem and BikAddress tables: field -> JSON types allowed.
NUMBER = (int, float)
BIK_ORDER = {
    "id": (str,),
    "name": (str,),
    "status": (str,),
    "paymentStatus": (str,),
    "items": (list,),
    "total": NUMBER,
    "subTotal": NUMBER,
    "shippingCharge": NUMBER,
    "discount": NUMBER,
    "currency": (str,),
    "address": (dict, type(None)),
    "phoneNumber": (str,),
    "email": (str,),
    "invoiceUrl": (str, type(None)),
    # beyond the guide's table: what Bik's getOrder page and placeOrder notes add
    "fulfillmentStatus": (str,),
    "deliveryInfo": (dict,),
    "partnersData": (dict,),
    "createdAt": (str,),
}
BIK_ORDER_ITEM = {
    "name": (str,),
    "variantName": (str,),
    "variantId": (int,),
    "productId": (int,),
    "quantity": (int,),
    "price": NUMBER,
    "image": (str, type(None)),
}
BIK_ADDRESS = {
    "firstName": (str,),
    "lastName": (str,),
    "address1": (str,),
    "address2": (str, type(None)),
    "city": (str,),
    "state": (str, type(None)),
    "country": (str,),
    "countryCode": (str, type(None)),
    "zip": (str,),
    "phoneNumber": (str, type(None)),
}


def json_of(response) -> dict:
    """The body as a plain JSON parser (Bik's) sees it: numbers are int or float."""
    return json.loads(response.get_data(as_text=True))


def assert_types(obj: dict, table: dict, where: str) -> None:
    assert set(obj) == set(table), f"{where}: keys {sorted(obj)}"
    for field, kinds in table.items():
        value = obj[field]
        assert isinstance(value, kinds) and not isinstance(value, bool), (
            f"{where}.{field} is {value!r}, expected {kinds}"
        )


def test_sample_order_is_stored_and_answered_in_bik_shape(client):
    body = sample_body()
    response = place(client, body)
    assert response.status_code == 200
    order = response.get_json()["order"]
    assert order["id"] == "ORD-1001" and order["name"] == "#1001"
    assert order["status"] == "ORDERED"
    assert order["paymentStatus"] == "pending"
    assert order["fulfillmentStatus"] == "unfulfilled"
    assert order["currency"] == "INR"
    assert order["partnersData"] == {"id": body["draftOrderId"]}
    assert order["deliveryInfo"] == {"trackingURL": None}
    assert (order["subTotal"], order["shippingCharge"], order["discount"], order["total"]) == (
        998,
        49,
        100,
        947,
    )
    assert all(type(order[k]) is int for k in ("subTotal", "shippingCharge", "discount", "total"))
    item = order["items"][0]
    assert item == {
        "name": "Skin Renew Cream",
        "variantName": "Default",
        "variantId": 40946134352009,
        "productId": 6862852391049,
        "quantity": 2,
        "price": 499,
        "image": None,
    }
    assert order["invoiceUrl"].startswith("http://localhost/invoice/")
    assert order["address"]["countryCode"] == "IN"


def test_sample_response_has_every_field_of_the_guide_with_its_type(client):
    body = sample_body()
    response = place(client, body)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    envelope = json_of(response)
    assert set(envelope) == {"order"}
    order = envelope["order"]
    assert_types(order, BIK_ORDER, "order")
    assert len(order["items"]) == 1
    assert_types(order["items"][0], BIK_ORDER_ITEM, "order.items[0]")
    assert_types(order["address"], BIK_ADDRESS, "order.address")
    assert order["address"] == {
        **body["order"]["address"],
        "address2": None,
        "state": None,
    }
    assert order["phoneNumber"] == "+919876543210"
    assert order["email"] == "buyer@example.com"
    assert order["deliveryInfo"] == {"trackingURL": None}
    assert order["partnersData"] == {"id": body["draftOrderId"]}
    # The response id is bikshop's own, never Bik's draft id echoed back.
    assert order["id"] != body["order"]["id"] and order["name"] != ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)", order["createdAt"])


def test_invoice_url_carries_a_random_token_of_at_least_128_bits(make_app):
    client = make_app(PUBLIC_URL="https://shop.example.com/").test_client()
    first = place(client).get_json()["order"]["invoiceUrl"]
    second = place(client).get_json()["order"]["invoiceUrl"]
    tokens = []
    for url in (first, second):
        match = re.fullmatch(r"https://shop\.example\.com/invoice/([A-Za-z0-9_-]+)", url)
        assert match, url
        tokens.append(match.group(1))
    assert tokens[0] != tokens[1]
    assert all(len(token) * 6 >= 128 for token in tokens)  # base64url: 6 bits per character


def test_sample_order_is_stored_with_items_address_timeline_and_raw_request(app, client):
    body = sample_body()
    body["order"]["email"] = "Buyer@Example.COM"
    raw = json.dumps(body, indent=2)
    response = client.post(
        "/bik/placeOrder", data=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    with app.app_context():
        order = db.session.scalars(select(Order)).one()
        assert order.raw_request == raw
        assert order.draft_order_id == body["draftOrderId"]
        assert (order.number, order.public_id, order.name) == (1001, "ORD-1001", "#1001")
        assert order.email == "buyer@example.com"
        assert order.currency == "INR"
        assert (order.sub_total, order.shipping_charge, order.discount, order.total) == (
            Decimal("998.00"),
            Decimal("49.00"),
            Decimal("100.00"),
            Decimal("947.00"),
        )
        assert order.address["city"] == "Bengaluru" and order.address["countryCode"] == "IN"
        assert order.customer_name == "Bik Tester"
        assert order.tags == "ordered_via_bik"
        assert order.paid_at is None
        [item] = order.items
        assert (item.product_id, item.variant_id) == ("6862852391049", "40946134352009")
        assert (item.quantity, item.price) == (2, Decimal("499.00"))
        [event] = db.session.scalars(select(OrderEvent)).all()
        assert (event.kind, event.actor) == ("placed", "bik")
        assert body["draftOrderId"] in event.message


def test_every_stored_column_holds_what_bik_sent(app, client):
    """Every column of the order, its item and its first event, as stored by placeOrder's
    write (one JSON document unpacked by PostgreSQL; statement by statement on SQLite)."""
    body = sample_body()
    body["paymentPending"] = False
    order = body["order"]
    order["address"] |= {"address2": 'Flat "4B", Café Lane 😀', "state": None, "zip": "560 102"}
    order["items"][0] |= {"variantName": None, "image": "https://cdn.example/a b.png"}
    order["items"].append(
        {"productId": "SKU-ü", "variantId": 7, "name": "Tester ₹", "quantity": 1, "price": 0.5}
    )
    order |= {"subTotal": 998.5, "shippingCharge": None, "discount": 0.25, "total": 998.25}
    raw = json.dumps(body, ensure_ascii=False)
    answer = client.post(
        "/bik/placeOrder", data=raw.encode(), headers={"Content-Type": "application/json"}
    ).get_json()["order"]
    with app.app_context():
        stored = db.session.scalars(select(Order)).one()
        event = db.session.scalars(select(OrderEvent)).one()
        columns = {c.key: getattr(stored, c.key) for c in Order.__table__.c}
        items = [{c.key: getattr(i, c.key) for c in i.__table__.c} for i in stored.items]
        db.session.remove()
    assert columns["raw_request"] == raw
    assert columns["invoice_token"] == answer["invoiceUrl"].rpartition("/")[2]
    assert columns["address"] == {k: v for k, v in order["address"].items() if v is not None}
    assert (columns["sub_total"], columns["shipping_charge"]) == (Decimal("998.50"), Decimal(0))
    assert (columns["discount"], columns["total"]) == (Decimal("0.25"), Decimal("998.25"))
    assert columns["amount_refunded"] == Decimal("0.00")
    assert (columns["status"], columns["payment_status"]) == ("ORDERED", "paid")
    assert columns["created_at"].utcoffset().total_seconds() == 0
    assert columns["created_at"] == columns["updated_at"] == columns["paid_at"]
    assert (columns["invoice_number"], columns["tracking_url"], columns["version"]) == (
        None,
        None,
        1,
    )
    assert (columns["customer_name"], columns["phone_digits"]) == ("Bik Tester", "919876543210")
    assert len(columns["request_fingerprint"]) == 64
    assert [(i["position"], i["product_id"], i["variant_id"]) for i in items] == [
        (0, "6862852391049", "40946134352009"),
        (1, "SKU-ü", "7"),
    ]
    assert [(i["name"], i["variant_name"], i["quantity"], i["price"]) for i in items] == [
        ("Skin Renew Cream", None, 2, Decimal("499.00")),
        ("Tester ₹", None, 1, Decimal("0.50")),
    ]
    assert [(i["image"], i["hsn_code"]) for i in items] == [
        ("https://cdn.example/a%20b.png", None),
        (None, None),
    ]
    assert (event.kind, event.actor, event.data) == ("placed", "bik", {"paymentPending": False})
    assert event.created_at.utcoffset().total_seconds() == 0


def test_a_pin_code_sent_as_a_number_is_kept_as_its_digits(client):
    """The guide types ``zip`` as a string; a form that kept it a number must not lose the
    order. It is stored and answered as text, and the same order sent either way is one."""
    body = sample_body()
    body["order"]["address"]["zip"] = 560102
    placed = place(client, body)
    assert placed.status_code == 200, placed.get_json()
    answer = placed.get_json()["order"]
    assert answer["address"]["zip"] == "560102"
    assert get(client, answer["id"]).get_json()["order"]["address"]["zip"] == "560102"
    body["order"]["address"]["zip"] = "560102"
    again = place(client, body)
    assert again.status_code == 200 and again.get_json()["order"]["id"] == answer["id"]
    # A serializer that writes every number as a double: the same PIN code, the same order.
    raw = json.dumps(body).replace('"zip": "560102"', '"zip": ZIP')
    for written in ("560102.0", "5.60102e5"):
        headers = {"Content-Type": "application/json"}
        sent = client.post("/bik/placeOrder", data=raw.replace("ZIP", written), headers=headers)
        assert sent.status_code == 200, (written, sent.get_json())
        assert sent.get_json()["order"]["id"] == answer["id"]


def test_whatsapps_direction_marks_are_removed_not_refused(app, client):
    """WhatsApp and Android wrap pasted phone numbers and names in bidirectional embeddings and
    isolates (U+202A … U+202C, U+2068 … U+2069): the order is placed with the text as it reads,
    and a right-to-left override (U+202E) can no longer make a name show spoofed. The raw
    request keeps what was sent."""
    body = sample_body()
    address = body["order"]["address"]
    address["firstName"] = "\u2068Rahul\u2069"
    address["address1"] = "Flat 4, call \u202a+91 98765 43210\u202c"
    address["lastName"] = "Asha\u202eahsA"
    body["order"]["phoneNumber"] = "\u202a+919876543210\u202c"
    body["order"]["items"][0]["name"] = "\u2067Toner\u2069 50 ml"
    placed = place(client, body)
    assert placed.status_code == 200, placed.get_json()
    answer = placed.get_json()["order"]
    assert (answer["address"]["firstName"], answer["address"]["lastName"]) == ("Rahul", "AshaahsA")
    assert answer["address"]["address1"] == "Flat 4, call +91 98765 43210"
    assert answer["phoneNumber"] == "+919876543210"
    assert answer["items"][0]["name"] == "Toner 50 ml"
    assert get(client, answer["id"]).get_json()["order"] == answer
    with app.app_context():
        order = db.session.scalars(select(Order).where(Order.public_id == answer["id"])).one()
        assert order.phone_digits == "919876543210"
        assert "\u202a" in json.loads(order.raw_request)["order"]["phoneNumber"]
    assert place(client, body).get_json()["order"]["id"] == answer["id"]  # a retry: same order
    # In an id matched exactly they are refused, not removed: two ids must not become one.
    body["draftOrderId"] += "\u2069"
    refused = place(client, body)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["fields"][0]["field"] == "draftOrderId"
    looked_up = get(client, answer["id"] + "\u202e")
    assert looked_up.status_code == 422
    assert "U+202E" in looked_up.get_json()["error"]["fields"][0]["message"]


def test_ids_written_as_whole_decimals_are_the_integers(client):
    """A double-based serializer writes ``40946134352009.0`` or ``4.0946134352009e13``: the
    same id as ``40946134352009``, as a quantity of ``2.0`` is 2. A fraction, or more than 64
    digits, is still a 422."""
    body = sample_body()
    raw = json.dumps(body)
    product, variant = (str(body["order"]["items"][0][k]) for k in ("productId", "variantId"))
    assert product.isdigit() and variant.isdigit()
    odd = raw.replace(f'"productId": {product}', f'"productId": {product}.0').replace(
        f'"variantId": {variant}', f'"variantId": {variant[0]}.{variant[1:]}e{len(variant) - 1}'
    )
    assert odd != raw
    headers = {"Content-Type": "application/json"}
    placed = client.post("/bik/placeOrder", data=odd, headers=headers)
    assert placed.status_code == 200, placed.get_json()
    item = placed.get_json()["order"]["items"][0]
    assert (item["productId"], item["variantId"]) == (int(product), int(variant))
    assert place(client, body).get_json()["order"]["id"] == placed.get_json()["order"]["id"]
    for bad, says in (
        ("6.5", "integer or a string"),
        ("1e64", "Beyond 2^53"),
        ("9007199254740993.0", "Beyond 2^53"),  # a double has lost its last digit already
        # Past Python's decimal exponent limit (999,999): abs() overflowed, a 500.
        ("1e1000000", "Beyond 2^53"),
        ("-1.0e1000000", "Beyond 2^53"),
    ):
        refused = client.post(
            "/bik/placeOrder", data=odd.replace(f"{product}.0", bad, 1), headers=headers
        )
        assert refused.status_code == 422
        assert says in refused.get_json()["error"]["fields"][0]["message"], refused.get_json()


def test_get_order_returns_the_placed_order(client):
    placed = place(client).get_json()["order"]
    response = get(client, placed["id"])
    assert response.status_code == 200
    assert response.get_json()["order"] == placed


def test_get_order_matches_bik_sample_response_after_delivery(app, client):
    """Bik's published getOrder sample: DELIVERED, paid, fulfilled, with a tracking URL."""
    placed = place(client).get_json()["order"]
    tracking = "https://courier.example.com/track/ABCD1234"
    with app.app_context():
        order = orders.find_order(placed["id"])
        orders.set_fulfillment(order, "fulfilled", actor="test", tracking_url=tracking)
        orders.change_status(order, "DELIVERED", actor="test")
        payments.mark_paid_offline(order, actor="test")
        db.session.remove()
    response = get(client, placed["id"])
    assert response.status_code == 200
    order = json_of(response)["order"]
    assert_types(order, BIK_ORDER, "order")
    published = {
        "id": "ORD-1001",
        "name": "#1001",
        "status": "DELIVERED",
        "paymentStatus": "paid",
        "items": [
            {
                "productId": 6862852391049,
                "variantId": 40946134352009,
                "name": "Skin Renew Cream",
                "variantName": "Default",
                "quantity": 2,
                "price": 499,
                "image": None,
            }
        ],
        "subTotal": 998,
        "shippingCharge": 49,
        "discount": 100,
        "total": 947,
        "currency": "INR",
        "phoneNumber": "+919876543210",
        "email": "buyer@example.com",
        "fulfillmentStatus": "fulfilled",
        "deliveryInfo": {"trackingURL": tracking},
    }
    for field, value in published.items():
        assert order[field] == value, field
        assert type(order[field]) is type(value), field


def test_get_order_shows_partial_fulfilment_and_cancellation(app, client):
    placed = place(client).get_json()["order"]
    with app.app_context():
        order = orders.find_order(placed["id"])
        orders.set_fulfillment(order, "partial", actor="test")
        orders.change_status(order, "CANCELLED", actor="test")
        db.session.remove()
    order = get(client, placed["id"]).get_json()["order"]
    assert (order["status"], order["fulfillmentStatus"]) == ("CANCELLED", "partial")
    assert order["deliveryInfo"] == {"trackingURL": None}


def test_fractional_money_comes_back_as_sent(client):
    body = sample_body(
        subTotal=999,
        total=948,
        items=[
            {
                "productId": 1,
                "variantId": 2,
                "name": "Half",
                "variantName": "S",
                "quantity": 2,
                "price": 499.5,
            }
        ],
    )
    order = place(client, body).get_json()["order"]
    assert order["items"][0]["price"] == Decimal("499.5")
    raw = get(client, order["id"]).get_data(as_text=True)
    assert '"price":499.5' in raw and '"total":948' in raw


def test_paise_amounts_survive_exactly(client):
    body = sample_body(
        subTotal=0.3,
        shippingCharge=0.1,
        discount=0.2,
        total=0.2,
        items=[
            {"productId": 1, "variantId": 2, "name": "Sample", "quantity": 3, "price": 0.1},
        ],
    )
    response = place(client, body)
    assert response.status_code == 200, response.get_data(as_text=True)
    order = json_of(get(client, response.get_json()["order"]["id"]))["order"]
    assert (order["subTotal"], order["shippingCharge"], order["discount"], order["total"]) == (
        0.3,
        0.1,
        0.2,
        0.2,
    )
    assert order["items"][0]["price"] == 0.1


def test_order_numbers_start_at_the_configured_number_with_the_prefix(make_app):
    client = make_app(ORDER_NUMBER_START=5000, ORDER_ID_PREFIX="GLOW-").test_client()
    first = place(client).get_json()["order"]
    second = place(client).get_json()["order"]
    assert (first["id"], first["name"]) == ("GLOW-5000", "#5000")
    assert (second["id"], second["name"]) == ("GLOW-5001", "#5001")
    assert get(client, "GLOW-5001").get_json()["order"]["id"] == "GLOW-5001"
