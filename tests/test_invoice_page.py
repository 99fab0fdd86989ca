"""The customer's invoice page: content, escaping, privacy headers, ETag/304, 404s, weight."""

from __future__ import annotations

import gzip
import re
from urllib.parse import urlsplit

import pytest

from bikshop.extensions import db
from bikshop.services.orders import change_status, find_by_invoice_token, set_fulfillment
from tests.invoice_support import GST_SETTINGS, order_body, pdf_text, place_invoice

PAGE_BUDGET = 30 * 1024


def test_page_shows_the_order_items_totals_and_addresses(client):
    path = place_invoice(client, order_body([("Skin Renew Cream", 2, "499")], discount="100"))
    response = client.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    for text in (
        "Glow Naturals",
        "Order #1001",
        "Payment pending",
        "Skin Renew Cream",
        "50 ml",
        "₹499.00",
        "₹998.00",  # line total and subtotal
        "₹49.00",
        "−₹100.00",
        "₹947.00",
        "Bik Office, HSR Layout, Sector 6",
        "+919876543210",
        "buyer@example.com",
        "Download PDF",
    ):
        assert text in html, text
    assert f'href="{path}.pdf"' in html
    assert "Tax invoice" not in html and "GSTIN" not in html  # no GSTIN: a plain invoice


def test_amounts_use_indian_digit_grouping(client):
    path = place_invoice(client, order_body([("Hamper", 1, "123456.5")], shipping="0"))
    assert "₹1,23,456.50" in client.get(path).get_data(as_text=True)


@pytest.mark.parametrize(
    ("currency", "shown", "how_to_pay"),
    [
        ("INR", "₹947.00", "Pay on delivery (cash or UPI), or on"),
        ("KWD", "KWD\u00a0947.000", "Pay on delivery, or on"),  # was KWD947.000
        ("AED", "AED\u00a0947.00", "Pay on delivery, or on"),
        ("USD", "$947.00", "Pay on delivery, or on"),  # UPI is for rupees
    ],
)
def test_a_currency_in_letters_stands_apart_from_its_figure(client, currency, shown, how_to_pay):
    """CLDR's currency spacing, which Babel leaves out (customer probe)."""
    body = order_body([("Hamper", 1, "898")], currency=currency)
    html = client.get(place_invoice(client, body)).get_data(as_text=True)
    assert shown in html and how_to_pay in html


def test_item_and_store_names_are_text_not_markup(make_app):
    client = make_app(STORE_NAME='Glow "Naturals" <b>&</b>').test_client()
    path = place_invoice(client, order_body([("<script>alert(1)</script>", 1, "10")]))
    html = client.get(path).get_data(as_text=True)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Glow &#34;Naturals&#34; &lt;b&gt;&amp;&lt;/b&gt;" in html


def test_status_badge_follows_the_order(client, app):
    path = place_invoice(client)
    token = path.rsplit("/", 1)[1]
    with app.app_context():
        change_status(find_by_invoice_token(token), "CANCELLED", actor="test")
    assert 'class="badge cancelled">Cancelled<' in client.get(path).get_data(as_text=True)


def test_a_paid_invoice_says_when_and_how_it_was_paid_on_page_and_pdf(client, app):
    """A receipt names the day of payment and how it was paid (customer probe); a pending
    order has none."""
    from bikshop.invoice.formatting import local_datetime
    from bikshop.services.payments import mark_paid_offline

    path = place_invoice(client)
    assert "Paid " not in client.get(path).text
    with app.app_context():
        order = find_by_invoice_token(path.rsplit("/", 1)[1])
        mark_paid_offline(order, actor="test")
        # In the store's zone, as Placed is; by cash, the dashboard's "Cash received".
        paid = f"Paid {local_datetime(order.paid_at)} by cash"
    assert f'<p class="muted">{paid}</p>' in client.get(path).text
    assert paid in " ".join(pdf_text(client.get(path + ".pdf").data).split())


def status_line(client, path) -> str:
    """The invoice's status line as a customer reads it: the badge, then the note beside it."""
    html = client.get(path).get_data(as_text=True)
    line = html.split('<p class="status">', 1)[1].split("</p>", 1)[0]
    return " ".join(re.sub(r"<[^>]+>", " ", line).split())


def test_an_address_with_only_a_country_code_reads_the_same_on_the_invoice_and_the_dashboard(
    admin_app,
):
    """An address whose country came only as ``countryCode``: the invoice, the dashboard's
    order page and the CSV export all show the code, by the one rule of bikshop/addresses.py
    (the invoice showed no country at all)."""
    from tests.admin_support import add_admin, sign_in

    add_admin(admin_app)
    client = admin_app.test_client()
    body = order_body()
    address = body["order"]["address"]
    address.pop("country", None)
    address |= {"city": "Pune", "state": "MH", "countryCode": "IN", "zip": "411001"}
    path = place_invoice(client, body)
    invoice = client.get(path).get_data(as_text=True)
    assert "Pune, MH 411001<br>IN</p>" in invoice
    sign_in(client)
    with admin_app.app_context():
        public_id = find_by_invoice_token(path.rsplit("/", 1)[1]).public_id
    page = client.get(f"/admin/orders/{public_id}").get_data(as_text=True)
    assert "Pune, MH 411001<br>" in page and re.search(r"<br>\s*IN\s*</address>", page)
    export = client.get("/admin/orders.csv").get_data(as_text=True)
    assert "Pune, MH, 411001, IN" in export


def test_the_status_line_says_how_far_the_order_has_got(client, app):
    """Shipped or partly shipped (fulfilment), in progress, delivered; a cancelled unpaid order
    owes nothing. The address's town line reads "City, State PIN"."""
    body = order_body()
    body["order"]["address"] |= {"city": "New Delhi", "state": "Delhi", "zip": "110024"}
    path = place_invoice(client, body)
    token = path.rsplit("/", 1)[1]
    assert "New Delhi, Delhi 110024" in client.get(path).get_data(as_text=True)
    assert status_line(client, path) == "Payment pending"
    steps = [
        (lambda o: change_status(o, "IN PROGRESS", actor="t"), "Payment pending · In progress"),
        (lambda o: set_fulfillment(o, "partial", actor="t"), "Payment pending · Partly shipped"),
        (lambda o: set_fulfillment(o, "fulfilled", actor="t"), "Payment pending · Shipped"),
        (lambda o: change_status(o, "DELIVERED", actor="t"), "Payment pending · Delivered"),
    ]
    for step, expected in steps:
        with app.app_context():
            step(find_by_invoice_token(token))
        assert status_line(client, path) == expected
    unpaid = place_invoice(client)
    with app.app_context():
        change_status(find_by_invoice_token(unpaid.rsplit("/", 1)[1]), "CANCELLED", actor="t")
    assert status_line(client, unpaid) == "Cancelled · nothing to pay"


def test_a_customer_who_paid_is_told_about_the_money_on_a_cancelled_or_refunded_order(client, app):
    """Paid, then cancelled: what was paid and that it is coming back. Partly refunded: what
    the customer has paid once the refunds are taken off (page and PDF)."""
    from decimal import Decimal

    from sqlalchemy import update

    from bikshop.models import Order
    from bikshop.services.payments import mark_paid_offline

    path = place_invoice(client)  # ₹1,047.00
    token = path.rsplit("/", 1)[1]
    with app.app_context():
        mark_paid_offline(find_by_invoice_token(token), actor="test")
        db.session.execute(
            update(Order).values(payment_status="partially_refunded", amount_refunded=300)
        )
        db.session.commit()
    page = " ".join(client.get(path).get_data(as_text=True).split())
    assert "<th>Net paid</th><td>₹747.00</td>" in page
    assert "Net paid ₹747.00" in " ".join(pdf_text(client.get(path + ".pdf").data).split())
    with app.app_context():
        change_status(find_by_invoice_token(token), "CANCELLED", actor="test")
    page = client.get(path).get_data(as_text=True)
    assert "₹300.00 of your payment is refunded; the shop will refund the other ₹747.00" in page
    with app.app_context():
        db.session.execute(
            update(Order).values(payment_status="refunded", amount_refunded=Decimal("1047"))
        )
        db.session.commit()
    assert "your payment was refunded" in client.get(path).get_data(as_text=True)


def test_an_order_of_nothing_says_there_is_nothing_to_pay(make_app, tmp_path):
    """A ₹0 order (a free sample, a discount as large as the basket) owes nothing: Bik is told
    it is paid, even with paymentPending true (Bik would tell the customer a payment is
    pending); no pay instructions, no Pay button, and a stale Pay form leads back to the
    invoice instead of a 409 "can't be paid online"."""
    client = make_app(
        PDF_CACHE_DIR=str(tmp_path),
        RAZORPAY_KEY_ID="rzp_test_x",
        RAZORPAY_KEY_SECRET="s",
        RAZORPAY_WEBHOOK_SECRET="w",
    ).test_client()
    free = order_body([("Sample kit", 2, "150")], shipping="0", discount="300")
    assert free["paymentPending"] is True
    placed = client.post("/bik/placeOrder", json=free)
    assert placed.get_json()["order"]["paymentStatus"] == "paid"
    assert placed.get_json()["order"]["total"] == 0
    path = urlsplit(placed.get_json()["order"]["invoiceUrl"]).path
    html = client.get(path).get_data(as_text=True)
    printed = pdf_text(client.get(path + ".pdf").data)
    for shown in (html, printed):
        assert "Nothing to pay" in shown and "₹0.00" in shown
        assert "Payment pending" not in shown and "Pay on delivery" not in shown
    assert 'class="pay"' not in html and "/pay" not in html
    pay = client.post(path + "/pay")
    assert pay.status_code == 303 and pay.headers["Location"] == path


def test_tracking_link_shows_when_set_and_never_as_a_script_url(client, app):
    path = place_invoice(client)
    assert "Track your parcel" not in client.get(path).get_data(as_text=True)
    token = path.rsplit("/", 1)[1]
    with app.app_context():
        order = find_by_invoice_token(token)
        set_fulfillment(order, "fulfilled", actor="test", tracking_url="https://track.example/1")
    assert 'href="https://track.example/1"' in client.get(path).get_data(as_text=True)
    with app.app_context():
        order = find_by_invoice_token(token)
        set_fulfillment(order, "fulfilled", actor="test", tracking_url="javascript:alert(1)")
    assert "javascript:" not in client.get(path).get_data(as_text=True)


def test_privacy_headers(client):
    response = client.get(place_invoice(client))
    headers = response.headers
    assert headers["Cache-Control"] == "private, no-cache"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "noindex" in headers["X-Robots-Tag"]
    csp = headers["Content-Security-Policy"]
    for directive in (
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self' data: https:",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp and "script-src" not in csp


def test_payment_host_may_receive_the_pay_form_only_when_payment_is_configured(make_app):
    client = make_app(
        RAZORPAY_KEY_ID="rzp_test_x", RAZORPAY_KEY_SECRET="s", RAZORPAY_WEBHOOK_SECRET="w"
    ).test_client()
    csp = client.get(place_invoice(client)).headers["Content-Security-Policy"]
    assert "form-action 'self' https://rzp.io https://razorpay.com https://*.razorpay.com;" in csp


def test_etag_gives_304_until_the_order_changes(client, app):
    path = place_invoice(client)
    first = client.get(path)
    etag = first.headers["ETag"]
    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == "private, no-cache"
    with app.app_context():
        change_status(find_by_invoice_token(path.rsplit("/", 1)[1]), "IN PROGRESS", actor="t")
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert "In progress" in changed.get_data(as_text=True)


def test_etag_changes_when_the_store_settings_change(make_app):
    client = make_app().test_client()
    path = place_invoice(client)
    etag = client.get(path).headers["ETag"]
    other = make_app(STORE_NAME="Glow Naturals Two").test_client()
    assert other.get(path, headers={"If-None-Match": etag}).status_code == 200


def test_page_is_compressed_for_browsers_that_accept_it(client):
    # A typical basket of a few lines: a one-line page is so small that gzip's ratio sits
    # right at one half, and whether it lands just above or below is down to the random token.
    items = [(f"Face Serum No. {n}", 1, "349") for n in range(1, 6)]
    path = place_invoice(client, order_body(items))
    plain = client.get(path)
    response = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert response.headers.get("Content-Encoding") == "gzip", (response.status, response.headers)
    assert "Accept-Encoding" in response.headers["Vary"]
    assert gzip.decompress(response.data) == plain.data
    assert len(response.data) < len(plain.data) / 2


@pytest.mark.parametrize(
    "token",
    ["A" * 32, "short", "A" * 33, "%3Cscript%3E" + "A" * 20, "A" * 31 + "!"],
)
def test_bad_tokens_get_the_same_404_on_page_and_pdf(client, token):
    place_invoice(client)
    bodies = set()
    for path in (f"/invoice/{token}", f"/invoice/{token}.pdf"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.mimetype == "text/html"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "Content-Security-Policy" in response.headers
        body = response.get_data(as_text=True)
        assert "<style" not in body and "<script" not in body  # passes the CSP as served
        assert "#1001" not in body and "Back to your invoice" not in body
        assert "Glow Naturals" in body  # whom to ask: the shop's, not an order's
        bodies.add(body)
    assert len(bodies) == 1


def test_a_bad_invoice_link_says_whom_to_ask(make_app):
    """The 404 said "Ask the shop for a new one" and named no shop (customer probe)."""
    client = make_app(STORE_SUPPORT_PHONE="+91 80 4000 1234", STORE_SUPPORT_EMAIL="help@glow.in")
    client = client.test_client()
    body = client.get("/invoice/" + "A" * 32).get_data(as_text=True)
    assert "Ask the shop for a new one." in body
    assert '<a class="contact" href="tel:+918040001234">+91 80 4000 1234</a>' in body
    assert '<a class="contact" href="mailto:help@glow.in">help@glow.in</a>' in body


@pytest.mark.parametrize("after", [".", ",", ")", ").", "!", "”", "…"])
def test_a_link_pasted_with_the_punctuation_after_it_still_opens(client, after):
    """A link copied with its sentence's full stop, or from inside brackets: no token ends
    with those, so the page redirects to the link without them."""
    path = place_invoice(client)
    answer = client.get(path + after)
    assert answer.status_code == 301 and answer.headers["Location"] == path
    unknown = client.get("/invoice/" + "A" * 32 + after)
    assert unknown.status_code == 404  # only a real invoice's link is led on
    # The PDF's link too (it was a 404).
    pdf = client.get(path + ".pdf" + after)
    assert pdf.status_code == 301 and pdf.headers["Location"] == path + ".pdf"
    assert client.get("/invoice/" + "A" * 32 + ".pdf" + after).status_code == 404


def test_the_link_with_a_slash_added_opens_the_same_page(client):
    path = place_invoice(client)
    plain, slashed = client.get(path), client.get(path + "/")
    assert slashed.status_code == 200
    assert slashed.get_data() == plain.get_data()


def test_page_and_stylesheet_stay_within_30_kb(client):
    items = [(f"Product number {n} with a fairly long name", n % 3 + 1, "349.5") for n in range(10)]
    path = place_invoice(client, order_body(items, discount="50"))
    html = client.get(path).data
    stylesheet = re.search(rb'<link rel="stylesheet" href="([^"]+)"', html).group(1).decode()
    with client.get(stylesheet) as css:
        assert css.status_code == 200 and css.mimetype == "text/css"
        assert len(html) + len(css.data) <= PAGE_BUDGET, (len(html), len(css.data))
        # Versioned, so kept: without nginx it was "no-cache", a round trip before every
        # first paint on a slow phone (network probe).
        assert "?v=" in stylesheet and css.cache_control.max_age == 365 * 24 * 3600
    with client.get(stylesheet.split("?")[0]) as unversioned:
        assert unversioned.cache_control.max_age != 365 * 24 * 3600


def test_page_names_no_third_party_host(client):
    path = place_invoice(client)
    html = client.get(path).get_data(as_text=True)
    urls = re.findall(r'(?:href|src|action)="([^"]+)"', html)
    assert urls
    assert all(url.startswith("/") or url == "data:," for url in urls), urls  # "data:,": the icon


def test_product_images_are_lazy_with_fixed_size(client):
    body = order_body([("Cream", 1, "10"), ("Soap", 1, "20")])
    body["order"]["items"][0]["image"] = "https://cdn.example.com/cream.jpg"
    body["order"]["items"][1]["image"] = "http://insecure.example.com/soap.jpg"
    html = client.get(place_invoice(client, body)).get_data(as_text=True)
    assert (
        '<img src="https://cdn.example.com/cream.jpg" alt="" width="56" height="56"'
        ' loading="lazy">' in html
    )
    assert "insecure.example.com" not in html  # the CSP would block it: left out


def test_every_table_header_names_its_column(make_app):
    """The image column's header was an empty <th>: a column header with no name, announced
    as nothing (axe: empty-table-header; accessibility probe). It is a plain cell now."""
    client = make_app(**GST_SETTINGS).test_client()
    body = order_body([("Cream", 1, "10")])
    body["order"]["items"][0]["image"] = "https://cdn.example.com/cream.jpg"
    html = client.get(place_invoice(client, body)).get_data(as_text=True)
    headers = re.findall(r"<th\b[^>]*>(.*?)</th>", html, flags=re.S)
    assert "Unit price" in headers and "Taxable value" in " ".join(headers)
    assert [header for header in headers if not header.strip()] == []


def test_viewing_writes_nothing_without_a_gstin(client, app):
    path = place_invoice(client)
    client.get(path)
    with app.app_context():
        order = find_by_invoice_token(path.rsplit("/", 1)[1])
        assert order.invoice_number is None and order.version == 1
        db.session.remove()


def test_the_footer_shows_only_when_it_has_something_to_say(make_app):
    """A plain invoice of a store with no support contact has no footer (its top rule over
    nothing read as a broken page); a contact, or a tax invoice's GST line, brings it back."""
    bare = make_app(STORE_SUPPORT_PHONE=None, STORE_SUPPORT_EMAIL=None).test_client()
    html = bare.get(place_invoice(bare)).get_data(as_text=True)
    assert "<footer" not in html
    assert "not configured" not in html  # no placeholder address reaches the customer
    helped = make_app(STORE_SUPPORT_EMAIL="help@glow.example").test_client()
    html = helped.get(place_invoice(helped)).get_data(as_text=True)
    footer = html[html.index("<footer") : html.index("</footer>")]
    assert "Questions about this order?" in footer and "Write to" in footer
    assert "help@glow.example" in footer
    taxed = make_app(STORE_SUPPORT_PHONE=None, STORE_SUPPORT_EMAIL=None, **GST_SETTINGS)
    client = taxed.test_client()
    html = client.get(place_invoice(client)).get_data(as_text=True)
    footer = html[html.index("<footer") : html.index("</footer>")]
    assert "Prices include GST" in footer and "Questions" not in footer
