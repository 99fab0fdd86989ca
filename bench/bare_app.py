"""The baseline: a bare Flask app doing the Bik endpoints' JSON work, without storage, auth or
validation. ``gunicorn -c gunicorn.conf.py bench.bare_app:app``.

It parses the body with bikshop's exact-money JSON reader, builds the same BikOrder-shaped answer
and prints it with bikshop's JSON provider, so the ratio bikshop / baseline measures what bikshop
adds on top of the unavoidable HTTP and JSON work: auth, validation, the database, marshmallow.
"""

from __future__ import annotations

import itertools
import json
import secrets
from datetime import UTC, datetime

from flask import Flask, jsonify, request

from bikshop.checkbik import SAMPLE_ORDER
from bikshop.jsonio import BikshopJSONProvider, loads

app = Flask(__name__)
app.json = BikshopJSONProvider(app)

_numbers = itertools.count(1001)
_ITEM_FIELDS = ("name", "variantName", "variantId", "productId", "quantity", "price", "image")
_ADDRESS_FIELDS = (
    "firstName",
    "lastName",
    "address1",
    "address2",
    "city",
    "state",
    "country",
    "countryCode",
    "zip",
    "phoneNumber",
)


def bik_order(order: dict, *, public_id: str, number: int, draft_id: str, paid: bool) -> dict:
    """A BikOrder with the fields and order bikshop answers with."""
    address = order.get("address")
    return {
        "id": public_id,
        "name": f"#{number}",
        "status": "ORDERED",
        "paymentStatus": "paid" if paid else "pending",
        "fulfillmentStatus": "unfulfilled",
        "items": [{k: item.get(k) for k in _ITEM_FIELDS} for item in order["items"]],
        "subTotal": order["subTotal"],
        "shippingCharge": order["shippingCharge"],
        "discount": order["discount"],
        "total": order["total"],
        "currency": order.get("currency") or "INR",
        "address": {k: address.get(k) for k in _ADDRESS_FIELDS} if address else None,
        "phoneNumber": order["phoneNumber"],
        "email": (order.get("email") or "").lower() or None,
        "invoiceUrl": f"{request.host_url.rstrip('/')}/invoice/{secrets.token_urlsafe(24)}",
        "deliveryInfo": {"trackingURL": None},
        "partnersData": {"id": draft_id},
        "createdAt": datetime.now(UTC).isoformat(),
    }


def placed(body: dict):
    """The answer to a placeOrder of ``body``: the order it describes, numbered next."""
    number = next(_numbers)
    order = bik_order(
        body["order"],
        public_id=f"ORD-{number}",
        number=number,
        draft_id=body["draftOrderId"],
        paid=not body["paymentPending"],
    )
    return jsonify({"order": order})


@app.post("/bik/placeOrder")
def place_order():
    """Parse the body and answer the order it describes, as if it had been stored."""
    return placed(loads(request.get_data()))


# getOrder answers Bik's sample order under the asked id: the same shape a stored one has.
_STORED = loads(json.dumps(SAMPLE_ORDER))


@app.post("/bik/getOrder")
def get_order():
    """Parse the body and answer a BikOrder for the asked id."""
    body = loads(request.get_data())
    public_id = body["orderId"]
    stored = _STORED
    number = int(public_id.rpartition("-")[2] or 0)
    order = bik_order(
        stored["order"],
        public_id=public_id,
        number=number,
        draft_id=stored["draftOrderId"],
        paid=False,
    )
    return jsonify({"order": order})


@app.get("/healthz")
def healthz():
    """The same liveness probe bikshop has, so one start-up check fits both."""
    return {"status": "ok"}
