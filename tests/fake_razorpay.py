"""A fake Razorpay on loopback: the Payment Links and refund endpoints bikshop's real SDK calls,
plus test controls to pay a link (signed webhook POSTed to bikshop, signed callback URL back),
process refunds, go down (connection refused), go slow (answers after bikshop's timeout) or
lose the answer to a refund it made (``lose_refund_answers``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple
from urllib.parse import urlencode, urlsplit

import requests
from flask import Flask, jsonify, request
from werkzeug.serving import WSGIRequestHandler, make_server

KEY_ID = "rzp_test_FakeKey12345678"
KEY_SECRET = "fake_key_secret_0123456789"
WEBHOOK_SECRET = "fake_webhook_secret_abcdef"
_BASE62 = string.ascii_letters + string.digits
_CREATE_FIELDS = {
    "amount",
    "currency",
    "accept_partial",
    "first_min_partial_amount",
    "description",
    "reference_id",
    "customer",
    "notify",
    "reminder_enable",
    "notes",
    "callback_url",
    "callback_method",
    "expire_by",
    "upi_link",
    "options",
}


def new_id(prefix: str, length: int = 14) -> str:
    return prefix + "".join(secrets.choice(_BASE62) for _ in range(length))


def sign(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # the tests' output is bikshop's, not the fake's
        pass


def _customer_refusal(customer) -> tuple[str, str] | None:
    """The strictest reading of a link's ``customer`` (Razorpay documents its parts only by
    example: ``+919876543210``, ``gaurav.kumar@razorpay.com``): whatever bikshop sends must
    pass it. (message, field), or None."""
    if customer is None:
        return None
    if not isinstance(customer, dict) or set(customer) - {"name", "email", "contact"}:
        return "wrong input fields sent.", "customer"
    contact, email, name = (customer.get(k) for k in ("contact", "email", "name"))
    if contact is not None and not re.fullmatch(r"\+?[0-9]{8,15}", str(contact)):
        return "The contact format is invalid.", "customer.contact"
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+", str(email)):
        return "The email must be a valid email address.", "customer.email"
    if name is not None and not 1 <= len(str(name)) <= 50:
        return "The name may not be greater than 50 characters.", "customer.name"
    return None


def _error(description: str, status: int = 400, code: str = "BAD_REQUEST_ERROR", field=None):
    body = {
        "error": {
            "code": code,
            "description": description,
            "field": field,
            "source": "business",
            "step": "payment_initiation",
            "reason": "input_validation_failed",
            "metadata": {},
        }
    }
    return jsonify(body), status


class FakeRazorpay:
    """``with FakeRazorpay() as fake:`` then point ``BIKSHOP_RAZORPAY_API_URL`` at ``fake.url``."""

    def __init__(
        self,
        webhook_secret: str = WEBHOOK_SECRET,
        *,
        key_id: str = KEY_ID,
        key_secret: str = KEY_SECRET,
    ):
        self.webhook_secret = webhook_secret
        self.keys = (key_id, key_secret)  # the API keys it takes
        self.webhook_url: str | None = None  # bikshop's /webhooks/razorpay, set by the test
        self.links: dict[str, dict] = {}
        self.payments: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.calls: list[tuple[str, str, dict | None]] = []  # (method, path, json body)
        self.deliveries: list[requests.Response] = []  # bikshop's answers to our webhooks
        self.delay = 0.0  # seconds every API answer waits: "Razorpay is slow"
        # The next N refunds are made, but their answer is lost: a 504 page from Razorpay's
        # edge instead, or (``lost_answer_delay`` > 0) the answer held past bikshop's timeout.
        self.lose_refund_answers = 0
        self.lost_answer_delay = 0.0
        self.refund_keys: dict[str, tuple[dict, str]] = {}  # X-Refund-Idempotency → (body, id)
        self.refund_key_log: list[str | None] = []  # that header, per refund request
        self.refund_outage = 0  # the next N refund requests fail (503) before making anything
        self.rate_limited = 0  # the next N API requests get Razorpay's 429, unread
        # Host names whose callback_url Razorpay refuses ("Must be a valid URL", its docs say,
        # without saying which): a test names the ones it wants refused.
        self.refused_callback_hosts: set[str] = set()
        self.link_changes: dict = {}  # fields every new link is made with instead ("misbehaves")
        self.hold_creates: threading.Event | None = None  # a create answers once this is set
        self.lock = threading.Lock()
        self.app = self._build_app()
        self.port = 0
        self._server = None

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeRazorpay:
        self._server = make_server(
            "127.0.0.1", self.port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Razorpay is down: the port refuses connections until ``start()`` again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeRazorpay:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.delay = 0
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- the API ---------------------------------------------------------------------------
    def _build_app(self) -> Flask:
        app = Flask("fake_razorpay")

        @app.before_request
        def authenticate():
            self.calls.append((request.method, request.path, request.get_json(silent=True)))
            if self.delay:
                time.sleep(self.delay)
            if request.path.startswith("/_fake/"):
                return None
            if self.rate_limited:
                self.rate_limited -= 1
                # Razorpay's rate limit answers as its refusals do (reference: razorpay.md 4.2).
                return _error("Too many requests", 429)
            expected = "Basic " + base64.b64encode(":".join(self.keys).encode()).decode()
            if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
                return _error("The api key provided is invalid", 401)
            return None

        app.post("/v1/payment_links")(self._create)
        app.get("/v1/payment_links")(self._list)
        app.get("/v1/payment_links/<plink_id>")(self._fetch)
        app.post("/v1/payment_links/<plink_id>/cancel")(self._cancel)
        app.post("/v1/payments/<payment_id>/refund")(self._refund)
        app.get("/v1/refunds/<refund_id>")(self._fetch_refund)
        app.get("/v1/payments/<payment_id>/refunds")(self._list_refunds)
        app.post("/_fake/payment_links/<plink_id>/pay")(
            lambda plink_id: jsonify(callback_url=self.pay(plink_id))
        )
        app.errorhandler(404)(
            lambda e: _error("The requested URL was not found on the server.", 404)
        )
        return app

    def _create(self):
        if self.hold_creates is not None:
            self.hold_creates.wait(timeout=5)
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error("The request body is not valid JSON")
        unknown = set(body) - _CREATE_FIELDS
        if unknown:
            return _error("wrong input fields sent.", field=sorted(unknown)[0])
        amount = body.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool):
            return _error(
                "The amount is required" if amount is None else "The amount must be an integer.",
                field="amount",
            )
        if amount < 100:
            return _error("The amount must be atleast INR 1.00", field="amount")
        reference = body.get("reference_id")
        if reference is not None and (not isinstance(reference, str) or len(reference) > 40):
            return _error(
                "The reference id may not be greater than 40 characters.", field="reference_id"
            )
        if body.get("callback_url") and body.get("callback_method") != "get":
            return _error(
                "callback_method should be get when callback_url is set", field="callback_method"
            )
        if urlsplit(body.get("callback_url") or "").hostname in self.refused_callback_hosts:
            return _error("The callback url format is invalid.", field="callback_url")
        expire_by = body.get("expire_by", 0)
        if expire_by and expire_by < time.time() + 15 * 60:
            return _error("timestamp must be atleast 15 minutes in future", field="expire_by")
        notes = body.get("notes") or {}
        if len(notes) > 15 or any(len(str(v)) > 255 for v in notes.values()):
            return _error("value: the length must not be greater than 255.", field="notes")
        refused = _customer_refusal(body.get("customer"))
        if refused:
            return _error(refused[0], field=refused[1])
        with self.lock:
            if reference and any(link["reference_id"] == reference for link in self.links.values()):
                return _error("payment link creation with reference ID already attempted")
            now = int(time.time())
            link = {
                "accept_partial": bool(body.get("accept_partial")),
                "amount": amount,
                "amount_paid": 0,
                "callback_method": body.get("callback_method", ""),
                "callback_url": body.get("callback_url", ""),
                "cancelled_at": 0,
                "created_at": now,
                "currency": body.get("currency", "INR"),
                "customer": body.get("customer") or {},
                "description": body.get("description", ""),
                "expire_by": expire_by,
                "expired_at": 0,
                "first_min_partial_amount": 0,
                "id": new_id("plink_"),
                "notes": body.get("notes"),
                "notify": body.get("notify") or {},
                "order_id": None,
                "payments": None,
                "reference_id": reference or "",
                "reminder_enable": bool(body.get("reminder_enable")),
                "reminders": [],
                "short_url": f"https://rzp.io/rzp/{new_id('', 7)}",
                "status": "created",
                "updated_at": now,
                "upi_link": False,
                "user_id": "",
                "whatsapp_link": False,
            } | self.link_changes
            self.links[link["id"]] = link
        return jsonify(link)

    def _fetch(self, plink_id):
        link = self.links.get(plink_id)
        if link is None:
            return _error("The id provided does not exist")
        return jsonify(link)

    def _list(self):
        reference = request.args.get("reference_id")
        found = [link for link in self.links.values() if reference in (None, link["reference_id"])]
        return jsonify(payment_links=found)

    def _cancel(self, plink_id):
        link = self.links.get(plink_id)
        if link is None:
            return _error("The id provided does not exist")
        if link["status"] in ("paid", "partially_paid"):
            return _error("cannot cancel or expire an already paid/partially paid link")
        if link["status"] in ("expired", "cancelled"):
            return _error(f"cannot cancel or expire an {link['status']} link")
        link.update(status="cancelled", cancelled_at=int(time.time()))
        return jsonify(link)

    def _refund(self, payment_id):
        body = request.get_json(silent=True) or {}
        key = request.headers.get("X-Refund-Idempotency")
        with self.lock:
            self.refund_key_log.append(key)
            if self.refund_outage:
                self.refund_outage -= 1
                return _error("Something went wrong", 503, code="SERVER_ERROR")
            if key is not None:
                if len(key) < 10 or not key.replace("-", "").replace("_", "").isalnum():
                    return _error("The idempotency key is invalid")
                if key in self.refund_keys:
                    first_body, refund_id = self.refund_keys[key]
                    if first_body != body:
                        return _error(
                            "Different request with the same idempotency key has already "
                            "been processed."
                        )
                    return jsonify(self.refunds[refund_id])
            payment = self.payments.get(payment_id)
            if payment is None:
                return _error("The id provided does not exist")
            amount = body.get("amount", payment["amount"])
            if not isinstance(amount, int) or amount < 100:
                return _error("The amount must be atleast INR 1.00", field="amount")
            if amount > payment["amount"] - payment["amount_refunded"]:
                return _error(
                    "The refund amount provided is greater than amount captured", field="amount"
                )
            payment["amount_refunded"] += amount
            refund = {
                "id": new_id("rfnd_"),
                "entity": "refund",
                "amount": amount,
                "currency": payment["currency"],
                "payment_id": payment_id,
                "notes": body.get("notes") or [],
                "receipt": body.get("receipt"),
                "acquirer_data": {"arn": None},
                "created_at": int(time.time()),
                "batch_id": None,
                "status": "pending",
                "speed_processed": "normal",
                "speed_requested": "normal",
            }
            self.refunds[refund["id"]] = refund
            if key is not None:
                self.refund_keys[key] = (body, refund["id"])
            lost = self.lose_refund_answers > 0
            self.lose_refund_answers = max(0, self.lose_refund_answers - 1)
        if lost and not self.lost_answer_delay:
            return "<html><body>504 Gateway Time-out</body></html>", 504
        if lost:
            time.sleep(self.lost_answer_delay)
        return jsonify(refund)

    def _list_refunds(self, payment_id):
        if payment_id not in self.payments:
            return _error("The id provided does not exist")
        items = [r for r in self.refunds.values() if r["payment_id"] == payment_id]
        return jsonify(entity="collection", count=len(items), items=items[::-1])

    def _fetch_refund(self, refund_id):
        refund = self.refunds.get(refund_id)
        if refund is None:
            return _error("The id provided does not exist")
        return jsonify(refund)

    # ---- test controls ---------------------------------------------------------------------
    def last_link(self) -> dict:
        return list(self.links.values())[-1]

    def only_link(self) -> dict:
        assert len(self.links) == 1, f"expected one link, have {list(self.links)}"
        return next(iter(self.links.values()))

    def pay(
        self,
        plink_id: str,
        *,
        deliver: bool = True,
        amount_paid: int | None = None,
        currency: str | None = None,
        method: str = "upi",
    ) -> str:
        """The customer pays: the link becomes paid, the signed ``payment_link.paid`` webhook is
        POSTed to bikshop (unless ``deliver=False``), and the signed callback URL is returned."""
        link = self.links[plink_id]
        paid = link["amount"] if amount_paid is None else amount_paid
        payment_id = new_id("pay_")
        order_id = link["order_id"] or new_id("order_")
        now = int(time.time())
        payment = {
            "id": payment_id,
            "entity": "payment",
            "amount": paid,
            "currency": currency or link["currency"],
            "status": "captured",
            "order_id": order_id,
            "method": method,
            "amount_refunded": 0,
            "captured": True,
            "description": "#" + plink_id.removeprefix("plink_"),
            "email": link["customer"].get("email"),
            "contact": link["customer"].get("contact"),
            "created_at": now,
            "error_code": None,
            "error_description": None,
        }
        self.payments[payment_id] = payment
        link.update(
            status="paid",
            amount_paid=paid,
            order_id=order_id,
            updated_at=now,
            currency=currency or link["currency"],
            payments=[
                {
                    "amount": paid,
                    "created_at": now,
                    "method": method,
                    "payment_id": payment_id,
                    "plink_id": plink_id,
                    "status": "captured",
                    "updated_at": now,
                }
            ],
        )
        if deliver:
            self.deliver(*self.paid_event(plink_id))
        return self.callback_url(link)

    def paid_event(self, plink_id: str, **kwargs) -> tuple[bytes, dict]:
        """The signed ``payment_link.paid`` event for a link ``pay()`` paid."""
        link = self.links[plink_id]
        payment = self.payments[link["payments"][-1]["payment_id"]]
        return self.event("payment_link.paid", payment_link=link, payment=payment, **kwargs)

    def callback_url(self, link: dict) -> str:
        """Where Razorpay sends the customer after paying, signed with the key secret."""
        payment_id = link["payments"][-1]["payment_id"]
        message = f"{link['id']}|{link['reference_id']}|{link['status']}|{payment_id}"
        query = {
            "razorpay_payment_id": payment_id,
            "razorpay_payment_link_id": link["id"],
            "razorpay_payment_link_reference_id": link["reference_id"],
            "razorpay_payment_link_status": link["status"],
            "razorpay_signature": sign(KEY_SECRET, message.encode()),
        }
        return f"{link['callback_url']}?{urlencode(query)}"

    def event(
        self, name: str, *, secret: str | None = None, event_id: str | None = None, **entities
    ) -> tuple[bytes, dict]:
        """A signed webhook delivery: (compact JSON body, headers), as Razorpay sends it."""
        body = {
            "entity": "event",
            "account_id": "acc_FakeAccount0001",
            "event": name,
            "contains": list(entities),
            "created_at": int(time.time()),
            "payload": {key: {"entity": value} for key, value in entities.items()},
        }
        raw = json.dumps(body, separators=(",", ":")).encode()
        event_id = event_id or new_id("")
        headers = {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": sign(secret or self.webhook_secret, raw),
            "X-Razorpay-Event-Id": event_id,
            "Request-Id": event_id,
            "User-Agent": "Razorpay-Webhook/v1",
        }
        return raw, headers

    def deliver(self, raw: bytes, headers: dict) -> requests.Response:
        """POST one webhook delivery to bikshop, as Razorpay's sender would (5 s limit)."""
        assert self.webhook_url, "set fake.webhook_url to bikshop's /webhooks/razorpay"
        response = requests.post(self.webhook_url, data=raw, headers=headers, timeout=5)
        self.deliveries.append(response)
        return response

    def expire(self, plink_id: str) -> dict:
        link = self.links[plink_id]
        if link["status"] == "created":
            link.update(status="expired", expired_at=int(time.time()))
        return link

    def refund_in_dashboard(self, payment_id: str, amount: int | None = None) -> str:
        """The shop refunds a payment in Razorpay's own dashboard (not through bikshop); returns
        the refund's id (pending until :meth:`process_refund`)."""
        payment = self.payments[payment_id]
        amount = payment["amount"] - payment["amount_refunded"] if amount is None else amount
        payment["amount_refunded"] += amount
        refund_id = new_id("rfnd_")
        self.refunds[refund_id] = {
            "id": refund_id,
            "entity": "refund",
            "amount": amount,
            "currency": payment["currency"],
            "payment_id": payment_id,
            "receipt": None,
            "status": "pending",
            "created_at": int(time.time()),
        }
        return refund_id

    def process_refund(self, refund_id: str) -> tuple[bytes, dict]:
        """Razorpay finishes a refund: its ``refund.processed`` event (signed, not yet sent)."""
        refund = self.refunds[refund_id]
        refund["status"] = "processed"
        payment = self.payments[refund["payment_id"]]
        return self.event("refund.processed", refund=refund, payment=payment)

    def fail_refund(self, refund_id: str) -> tuple[bytes, dict]:
        """Razorpay gives up on a refund (the money stays with the shop): its ``refund.failed``
        event (signed, not yet sent)."""
        refund = self.refunds[refund_id]
        refund["status"] = "failed"
        payment = self.payments[refund["payment_id"]]
        payment["amount_refunded"] -= refund["amount"]
        return self.event("refund.failed", refund=refund, payment=payment)


def razorpay_settings(fake: FakeRazorpay, **changes) -> dict:
    """bikshop settings that point its real SDK at ``fake``."""
    return {
        "RAZORPAY_KEY_ID": KEY_ID,
        "RAZORPAY_KEY_SECRET": KEY_SECRET,
        "RAZORPAY_WEBHOOK_SECRET": fake.webhook_secret,
        "RAZORPAY_API_URL": fake.url,
        "RAZORPAY_TIMEOUT": 1,
        **changes,
    }


# ---- bikshop-side helpers for the payment tests -------------------------------------------------
def place_order(client, **order_changes) -> tuple[str, str]:
    """Place Bik's sample order (total 947) through the Bik door: (order id, invoice path)."""
    from tests.bik import place, sample_body

    response = place(client, sample_body(**order_changes))
    assert response.status_code == 200, response.get_data(as_text=True)
    order = response.get_json()["order"]
    return order["id"], "/invoice/" + order["invoiceUrl"].rsplit("/", 1)[1]


def payment_status(client, order_id: str) -> str:
    """What Bik's getOrder says right now."""
    from tests.bik import get

    return get(client, order_id).get_json()["order"]["paymentStatus"]


def post_webhook(client, raw: bytes, headers: dict):
    return client.post("/webhooks/razorpay", data=raw, headers=headers)


class Shop(NamedTuple):
    app: Flask
    client: object  # the app's FlaskClient
    fake: FakeRazorpay
    order_id: str
    invoice: str  # the invoice page's path


@contextmanager
def shop_with_open_link(make_app, *, settings=None, **order_changes) -> Iterator[Shop]:
    """bikshop on a fake Razorpay (``settings`` on top), with one order placed through the Bik
    door (``order_changes`` to Bik's sample) whose Pay button made a payment link, not yet
    paid."""
    with FakeRazorpay() as fake:
        app = make_app(**razorpay_settings(fake), **(settings or {}))
        client = app.test_client()
        order_id, invoice = place_order(client, **order_changes)
        assert client.post(invoice + "/pay").status_code == 303
        yield Shop(app, client, fake, order_id, invoice)


def pay_only_link(client, fake: FakeRazorpay) -> dict:
    """The customer pays the one payment link in full and its signed ``payment_link.paid``
    webhook reaches bikshop: bikshop's answer to the webhook."""
    link_id = fake.only_link()["id"]
    fake.pay(link_id, deliver=False)
    answer = post_webhook(client, *fake.paid_event(link_id))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def path_of(url: str) -> str:
    """The path and query of an absolute URL, for the Flask test client."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")
