"""Paying from the invoice in system Chromium at a phone's size: real gunicorn, the fake
Razorpay on loopback POSTing its signed webhooks."""

from __future__ import annotations

import json

import pytest
import requests

from bikshop.jsonio import decimal_to_json
from tests.bik import sample_body
from tests.fake_razorpay import FakeRazorpay, razorpay_settings


@pytest.fixture
def shop(gunicorn, tmp_path):
    with FakeRazorpay() as fake:
        env = {f"BIKSHOP_{k}": str(v) for k, v in razorpay_settings(fake).items()}
        server = gunicorn(workers=1, env=env | {"BIKSHOP_PDF_CACHE_DIR": str(tmp_path)})
        fake.webhook_url = server.url + "/webhooks/razorpay"
        yield server, fake


def _place(server) -> str:
    placed = requests.post(
        server.url + "/bik/placeOrder",
        data=json.dumps(sample_body(), default=decimal_to_json),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert placed.status_code == 200, placed.text
    return placed.json()["order"]["invoiceUrl"]


def test_a_payment_that_does_not_match_the_order_stops_the_pay_button(shop, phone_page, output_dir):
    """The customer paid, but not what the order says (Razorpay reports another amount): the
    shop has to look. Reopening the invoice (the browser revalidates its copy by ETag) used to
    show "Payment pending" with the Pay button again, and Pay made a second link to pay on."""
    server, fake = shop
    invoice = _place(server)
    assert phone_page.goto(invoice).status == 200
    with phone_page.expect_request(lambda r: r.url.startswith("https://rzp.io/")):
        phone_page.get_by_role("button", name="Pay ₹947.00").click()  # on to Razorpay's page
    link = fake.only_link()
    fake.pay(link["id"], amount_paid=link["amount"] - 100)  # ₹946 paid on a ₹947 order
    assert fake.deliveries[-1].json()["outcome"].startswith("mismatch")

    assert phone_page.goto(invoice).status == 200  # a conditional request: not a stale 304
    phone_page.screenshot(path=output_dir / "invoice-phone-payment-in-review.png", full_page=True)
    assert phone_page.get_by_text("please do not pay again").is_visible()
    assert phone_page.get_by_role("button").count() == 0
    again = requests.post(invoice + "/pay", allow_redirects=False, timeout=10)  # a stale page
    assert again.status_code == 303 and again.headers["Location"].endswith(invoice[-32:])
    assert len(fake.links) == 1  # no second link to pay twice on
