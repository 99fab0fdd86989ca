"""Paying from the invoice in system Chromium at a phone's size: real gunicorn, the fake
Razorpay on loopback POSTing its signed webhooks."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest
import requests
from werkzeug.serving import make_server

from bikshop.jsonio import decimal_to_json
from tests.bik import sample_body
from tests.browser import CHROMIUM, CHROMIUM_ARGS, PHONE
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
    # Razorpay's page, as a stand-in: a failed lookup of rzp.io would navigate to an error page
    # that can interrupt the next goto.
    phone_page.route(
        "https://rzp.io/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body="<h1>Pay</h1>"),
    )
    phone_page.get_by_role("button", name="Pay ₹947.00").click()  # on to Razorpay's page
    phone_page.wait_for_url("https://rzp.io/**")
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


@pytest.fixture
def razorpay_hosts(tmp_path):
    """Razorpay's public hosts (rzp.io, razorpay.com, pages.razorpay.com) served over TLS by
    one local server: rzp.io's short links redirect to ``checkout[0]``'s host, which shows a
    checkout page. Yields (the server's address, checkout), ``checkout`` a one-item list."""
    names = ("rzp.io", "razorpay.com", "pages.razorpay.com")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=rzp.io"]
        + ["-addext", "subjectAltName=" + ",".join(f"DNS:{n}" for n in names)],
        check=True,
        capture_output=True,
    )
    checkout = ["razorpay.com"]

    def app(environ, start_response):
        host, path = environ["HTTP_HOST"].split(":")[0], environ["PATH_INFO"]
        if host == "rzp.io":
            location = f"https://{checkout[0]}/payment-link/plink_{path.rsplit('/', 1)[-1]}"
            start_response("302 Found", [("Location", location), ("Content-Length", "0")])
            return [b""]
        page = b"<!doctype html><title>Razorpay</title><h1>Checkout</h1>"
        start_response(
            "200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(page)))]
        )
        return [page]

    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=(str(cert), str(key)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rules = ", ".join(f"MAP {n} 127.0.0.1:{server.server_port}" for n in names)
    yield rules, checkout
    server.shutdown()


@pytest.mark.parametrize("checkout_host", ["razorpay.com", "pages.razorpay.com"])
def test_pay_lands_on_razorpays_checkout_through_its_short_link(
    shop, browser, razorpay_hosts, checkout_host
):
    """Pay answers 303 to the link's rzp.io short URL, which Razorpay redirects on to its own
    page. Chromium checks the invoice's CSP form-action at every hop of a form's redirects, and
    `*.razorpay.com` does not cover `razorpay.com` itself: a host missing from it leaves the
    customer on the invoice, with nothing but a console message."""
    server, fake = shop
    rules, checkout = razorpay_hosts
    checkout[0] = checkout_host
    invoice = _place(server)
    chromium = browser.browser_type.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[*CHROMIUM_ARGS, f"--host-resolver-rules={rules}"],
    )
    try:
        page = chromium.new_context(
            viewport=PHONE, is_mobile=True, ignore_https_errors=True
        ).new_page()
        refused = []
        page.on(
            "console", lambda m: refused.append(m.text) if "Security Policy" in m.text else None
        )
        assert page.goto(invoice).status == 200
        page.get_by_role("button", name="Pay ₹947.00").click()
        page.wait_for_url(f"https://{checkout_host}/payment-link/plink_**", timeout=10_000)
        assert page.get_by_role("heading", name="Checkout").is_visible()
        assert refused == []
    finally:
        chromium.close()
