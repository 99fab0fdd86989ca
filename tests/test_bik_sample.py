"""Bik's published sample request gives Bik's published response shape, field by field."""

from decimal import Decimal

from tests.bik import get, place, sample_body


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


def test_get_order_returns_the_placed_order(client):
    placed = place(client).get_json()["order"]
    response = get(client, placed["id"])
    assert response.status_code == 200
    assert response.get_json()["order"] == placed


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
