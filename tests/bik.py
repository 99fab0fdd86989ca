"""Helpers for talking to the Bik endpoints the way Bik does."""

from __future__ import annotations

import copy
import itertools
import json
from decimal import Decimal

import pytest

from bikshop.checkbik import SAMPLE_ORDER

_drafts = itertools.count(1)


def new_draft_id() -> str:
    return f"nb_1715200000_t{next(_drafts):07d}"


def sample_body(draft_id: str | None = None, **order_changes) -> dict:
    """Bik's published sample placeOrder body, with a fresh draft id unless one is given."""
    body = copy.deepcopy(SAMPLE_ORDER)
    body["draftOrderId"] = body["order"]["id"] = draft_id or new_draft_id()
    body["order"].update(order_changes)
    return body


def place(client, body=None, headers=None):
    return client.post("/bik/placeOrder", json=body or sample_body(), headers=headers or {})


def get(client, order_id, headers=None):
    return client.post("/bik/getOrder", json={"orderId": order_id}, headers=headers or {})


# Every table a placeOrder writes; a refused request must leave all of them unchanged.
STORED_TABLES = ("orders", "order_items", "order_events", "counters")


def stored_state(app) -> dict:
    """Row counts of every table placeOrder writes, plus each counter's value."""
    from sqlalchemy import text

    from bikshop.extensions import db

    with app.app_context():
        state = {
            table: db.session.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
            for table in STORED_TABLES
        }
        state["counter values"] = dict(
            db.session.execute(text("SELECT name, value FROM counters")).all()
        )
        db.session.remove()
    return state


def assert_error_shape(response, status: int) -> dict:
    """The one JSON error shape; returns the ``error`` object."""
    text = response.get_data(as_text=True) if hasattr(response, "get_data") else response.text
    assert response.status_code == status, text[:500]
    assert response.headers["Content-Type"].split(";")[0] == "application/json"
    body = json.loads(text)
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"status", "code", "message", "fields"}
    assert error["status"] == status
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["fields"], list)
    for field in error["fields"]:
        assert set(field) == {"field", "message"}
        assert field["field"] is None or isinstance(field["field"], str)
        assert isinstance(field["message"], str) and field["message"]
    return error


@pytest.fixture(scope="module", name="bik_app")
def bik_app_fixture(database_url):
    """One app per test module and backend, for tests that count rows instead of emptying."""
    from bikshop import create_app
    from bikshop.database import dispose_engines
    from bikshop.extensions import db
    from tests.conftest import BASE_CONFIG

    app = create_app({**BASE_CONFIG, "DATABASE_URL": database_url})
    yield app
    with app.app_context():
        db.session.remove()
        dispose_engines()


def set_in(body: dict, path: str, value) -> dict:
    """Set ``order.items.0.quantity``-style ``path`` in ``body`` (``DELETE`` removes it)."""
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        last = int(last)
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return body


DELETE = object()


def assert_bik_order(order) -> None:
    """A well-formed BikOrder, field by field and type by type (as a JSON parser sees it)."""
    number = (int, float, Decimal)
    assert isinstance(order, dict)
    for field, kinds in {
        "id": str,
        "name": str,
        "status": str,
        "paymentStatus": str,
        "fulfillmentStatus": str,
        "items": list,
        "total": number,
        "subTotal": number,
        "shippingCharge": number,
        "discount": number,
        "currency": str,
        "phoneNumber": str,
        "email": str,
        "invoiceUrl": str,
        "deliveryInfo": dict,
        "partnersData": dict,
    }.items():
        value = order[field]
        assert isinstance(value, kinds) and not isinstance(value, bool), (field, value)
    assert order["status"] in ("ORDERED", "IN PROGRESS", "DELIVERED", "CANCELLED")
    assert order["paymentStatus"] in ("pending", "paid", "partially_refunded", "refunded")
    assert order["fulfillmentStatus"] in ("unfulfilled", "partial", "fulfilled")
    assert order["address"] is None or isinstance(order["address"], dict)
    assert order["items"], "an order always has items"
    for item in order["items"]:
        assert isinstance(item["name"], str) and item["name"]
        assert isinstance(item["quantity"], int) and item["quantity"] >= 1
        assert isinstance(item["price"], number) and item["price"] >= 0
        assert isinstance(item["productId"], int | str) and isinstance(item["variantId"], int | str)
    total = Decimal(str(order["subTotal"])) + Decimal(str(order["shippingCharge"]))
    assert Decimal(str(order["total"])) == total - Decimal(str(order["discount"]))
