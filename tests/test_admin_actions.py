"""Actions on an order: CSRF on every form, the service functions, the timeline, escaping."""

from __future__ import annotations

import re

import pytest

from tests.admin_support import (
    OWNER,
    csrf_token,
    place_order,
)
from tests.test_admin_auth import ADMIN_ROUTES

STATE_CHANGING = [(e, r) for e, m, r in ADMIN_ROUTES if m == "POST" and "<" in r]
VALID_FORMS = {
    "admin.change_status": {"status": "IN PROGRESS"},
    "admin.set_fulfillment": {"fulfillment": "fulfilled", "tracking_url": "https://t.example/1"},
    "admin.cancel": {},
    "admin.mark_paid": {},
    "admin.refund": {"amount": "100"},
}
# With the right token, each form reaches its service (a refund of an unpaid order is then
# refused by the refund rules, not by CSRF).
GOOD_TOKEN_STATUS = {"admin.refund": 409}


def _bik_view(client, order_id):
    return client.post("/bik/getOrder", json={"orderId": order_id}).json["order"]


def _timeline(html: str) -> list[str]:
    block = html.split('<ol class="timeline">', 1)[1].split("</ol>", 1)[0]
    return re.findall(r"<span>([^<]*)</span> <small class=\"actor\">by ([^<]*)</small>", block)


def test_every_state_changing_form_is_known_to_this_test():
    assert {endpoint for endpoint, _ in STATE_CHANGING} == set(VALID_FORMS)


@pytest.mark.parametrize(("endpoint", "rule"), STATE_CHANGING)
def test_state_changing_forms_refuse_a_missing_or_wrong_csrf_token(owner, endpoint, rule):
    order = place_order(owner)
    url = rule.replace("<public_id>", order["id"])
    page = owner.get(f"/admin/orders/{order['id']}")
    before = _bik_view(owner, order["id"])
    events = _timeline(page.text)
    from_other_session = _token_of_another_session(owner)
    for token in (None, "", "not-a-token", from_other_session):
        data = dict(VALID_FORMS[endpoint])
        if token is not None:
            data["csrf_token"] = token
        answer = owner.post(url, data=data)
        assert answer.status_code == 400, (token, answer.status_code)
        assert "This form expired" in answer.text
    assert _bik_view(owner, order["id"]) == before
    assert _timeline(owner.get(f"/admin/orders/{order['id']}").text) == events
    # And the genuine token works, so the refusals above were about the token alone.
    good = owner.post(url, data={**VALID_FORMS[endpoint], "csrf_token": csrf_token(page.text)})
    assert good.status_code == GOOD_TOKEN_STATUS.get(endpoint, 303)


def _token_of_another_session(owner):
    other = owner.application.test_client()
    return csrf_token(other.get("/admin/login").text)


def _act(client, order_id, action, **data):
    page = client.get(f"/admin/orders/{order_id}")
    return client.post(
        f"/admin/orders/{order_id}/{action}", data={"csrf_token": csrf_token(page.text), **data}
    )


def test_actions_change_what_bik_sees_and_are_on_the_timeline(owner):
    order = place_order(owner)
    oid = order["id"]
    track = "https://track.example/AWB123?x=1&y=2"
    assert (
        _act(owner, oid, "fulfillment", fulfillment="fulfilled", tracking_url=track).status_code
        == 303
    )
    assert _act(owner, oid, "status", status="IN PROGRESS").status_code == 303
    assert _act(owner, oid, "status", status="DELIVERED").status_code == 303
    paid = _act(owner, oid, "paid")
    assert paid.status_code == 303
    assert "Marked as paid" in owner.get(paid.headers["Location"]).text

    bik = _bik_view(owner, oid)
    assert bik["status"] == "DELIVERED"
    assert bik["fulfillmentStatus"] == "fulfilled"
    assert bik["paymentStatus"] == "paid"
    assert bik["deliveryInfo"]["trackingURL"] == track

    actor = f"admin:{OWNER}"
    timeline = _timeline(owner.get(f"/admin/orders/{oid}").text)
    by_admin = [message for message, who in timeline if who == actor]
    assert len(by_admin) == 5  # fulfilment, tracking, two statuses, payment
    assert any("DELIVERED" in m for m in by_admin)
    # In the owner's words, not Bik's JSON keys.
    assert {"Fulfilment changed to fulfilled", "Status changed to DELIVERED"} <= set(by_admin)
    assert any("Paid 947 INR by cash" in m for m in by_admin)
    assert timeline[-1][1] == "bik"  # placed, the oldest entry, at the bottom


def test_an_illegal_move_is_refused_with_the_reason(owner):
    oid = place_order(owner)["id"]
    assert _act(owner, oid, "status", status="DELIVERED").status_code == 303
    refused = _act(owner, oid, "status", status="ORDERED")
    assert refused.status_code == 409
    assert "Cannot change status from DELIVERED to ORDERED; DELIVERED is final" in refused.text
    cancel = _act(owner, oid, "cancel")
    assert cancel.status_code == 409 and "DELIVERED is final" in cancel.text
    assert _bik_view(owner, oid)["status"] == "DELIVERED"


def test_cancel_then_cash_received_is_refused(owner):
    oid = place_order(owner)["id"]
    assert _act(owner, oid, "cancel").status_code == 303
    assert _bik_view(owner, oid)["status"] == "CANCELLED"
    refused = _act(owner, oid, "paid")
    assert refused.status_code == 409
    assert "A cancelled order cannot be marked paid" in refused.text
    assert _bik_view(owner, oid)["paymentStatus"] == "pending"


def test_a_bad_tracking_link_is_refused_and_nothing_stored(owner):
    oid = place_order(owner)["id"]
    for link in (
        "javascript:alert(1)",
        "ftp://files.example/x",
        "not a link",
        "https://" + "a" * 2048,
    ):
        answer = _act(owner, oid, "fulfillment", fulfillment="fulfilled", tracking_url=link)
        assert answer.status_code == 400, link
    bik = _bik_view(owner, oid)
    assert bik["fulfillmentStatus"] == "unfulfilled"
    assert bik["deliveryInfo"]["trackingURL"] is None


def test_a_tracking_link_is_stored_as_a_link_that_survives_a_chat_message(owner):
    """Bik shares trackingURL as text: a space would end the link there, so what a browser
    would send is stored (as for product images); already-escaped parts stay as they are."""
    oid = place_order(owner)["id"]
    typed = 'https://courier.example/track/ABCD 1234?x=é&y="><b>&z=%20'
    answer = _act(owner, oid, "fulfillment", fulfillment="fulfilled", tracking_url=typed)
    assert answer.status_code == 303
    assert _bik_view(owner, oid)["deliveryInfo"]["trackingURL"] == (
        "https://courier.example/track/ABCD%201234?x=%C3%A9&y=%22%3E%3Cb%3E&z=%20"
    )


def test_order_page_escapes_what_the_customer_typed(owner):
    evil = '<script>alert("x")</script>'
    address = {
        "firstName": evil,
        "lastName": "<b>bold</b>",
        "address1": "<img src=x onerror=alert(1)>",
        "city": "Pune",
        "country": "India",
        "countryCode": "IN",
        "zip": "411001",
        "phoneNumber": "+919876543210",
    }
    order = place_order(owner, address=address, tags="<i>vip</i>")
    page = owner.get(f"/admin/orders/{order['id']}").text
    listing = owner.get("/admin/").text
    for html in (page, listing):
        assert "<script>alert" not in html and "<b>bold" not in html
        assert "&lt;script&gt;alert(" in html
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<i>vip" not in page
    # The raw request Bik sent is on the page, escaped.
    assert "Request Bik sent" in page and "&#34;firstName&#34;: &#34;&lt;script&gt;" in page


def test_order_page_shows_contact_invoice_and_payments(owner):
    order = place_order(owner)
    page = owner.get(f"/admin/orders/{order['id']}").text
    assert 'href="tel:+919876543210"' in page
    assert 'href="https://wa.me/919876543210"' in page
    assert f'value="{order["invoiceUrl"]}"' in page and "Copy link" in page
    assert "Skin Renew Cream" in page and "₹947.00" in page
    assert "No payments yet." in page


def test_unknown_order_is_a_404_page(owner):
    answer = owner.get("/admin/orders/ORD-999999")
    assert answer.status_code == 404 and answer.mimetype == "text/html"


def test_refund_part_of_an_online_payment_from_the_order_page(make_app):
    from tests.admin_support import ADMIN_CONFIG, add_admin, sign_in
    from tests.fake_razorpay import pay_only_link, shop_with_open_link

    with shop_with_open_link(make_app, settings=ADMIN_CONFIG) as (app, client, fake, order_id, _):
        assert pay_only_link(client, fake)["outcome"] == "paid"
        add_admin(app)
        sign_in(client)
        page = client.get(f"/admin/orders/{order_id}").text
        assert "Refund through Razorpay" in page

        too_much = _act(client, order_id, "refund", amount="947.01")
        assert too_much.status_code == 422 and "at most 947 INR is left to refund" in too_much.text
        too_little = _act(client, order_id, "refund", amount="0.50")
        assert too_little.status_code == 422 and "no less than 1 INR" in too_little.text
        asked = _act(client, order_id, "refund", amount="500.50")
        assert asked.status_code == 303
        assert [b["amount"] for _, path, b in fake.calls if path.endswith("/refund")] == [50050]
        refund_id = next(iter(fake.refunds))
        raw, headers = fake.process_refund(refund_id)
        assert client.post("/webhooks/razorpay", data=raw, headers=headers).status_code == 200
        # The form's hint is what is left to refund, not the order's total.
        assert 'placeholder="446.50"' in client.get(f"/admin/orders/{order_id}").text

        fake.lose_refund_answers = 1  # Razorpay makes the next refund; its answer is lost
        lost = _act(client, order_id, "refund", amount="100")
        assert lost.status_code == 503 and "may or may not have been made" in lost.text
        held = _act(client, order_id, "refund", amount="446.5")
        assert held.status_code == 422 and "at most 346.5 INR is left to refund" in held.text
    assert _bik_view(client, order_id)["paymentStatus"] == "partially_refunded"
    timeline = _timeline(client.get(f"/admin/orders/{order_id}").text)
    assert any("Refund of 500.5 INR" in m and who == f"admin:{OWNER}" for m, who in timeline)
    assert any("which did not confirm it" in m for m, _ in timeline)


def test_a_cancelled_order_cannot_be_fulfilled(owner):
    oid = place_order(owner)["id"]
    assert _act(owner, oid, "cancel").status_code == 303
    track = "https://track.example/AWB1"
    refused = _act(owner, oid, "fulfillment", fulfillment="fulfilled", tracking_url=track)
    assert refused.status_code == 409
    assert "cancelled" in refused.text
    bik = _bik_view(owner, oid)
    assert (bik["status"], bik["fulfillmentStatus"]) == ("CANCELLED", "unfulfilled")
    assert bik["deliveryInfo"]["trackingURL"] is None


@pytest.mark.parametrize("action", ["status", "cancel", "fulfillment", "paid", "refund"])
def test_an_action_address_opened_as_a_page_shows_the_order(owner, action):
    """A refused action is shown at the form's address; reloaded later, bookmarked or shared,
    that address opens the order page, not 'method not allowed'."""
    oid = place_order(owner)["id"]
    assert _act(owner, oid, "cancel").status_code == 303
    refused = _act(owner, oid, "status", status="IN PROGRESS")
    assert refused.status_code == 409
    opened = owner.get(f"/admin/orders/{oid}/{action}")
    assert opened.status_code == 303
    assert opened.headers["Location"] == f"/admin/orders/{oid}"
    assert owner.get(opened.headers["Location"]).status_code == 200
    assert _bik_view(owner, oid)["status"] == "CANCELLED"  # opening it changed nothing


def _fulfilment_menu(html: str) -> list[str]:
    menu = re.search(r'<select[^>]*name="fulfillment"[^>]*>(.*?)</select>', html, re.S)
    return re.findall(r'<option[^>]*value="([^"]+)"', menu.group(1)) if menu else []


def test_the_fulfilment_menu_offers_only_what_the_order_can_be_now(owner):
    oid = place_order(owner)["id"]
    assert _fulfilment_menu(owner.get(f"/admin/orders/{oid}").text) == [
        "unfulfilled",
        "partial",
        "fulfilled",
    ]
    assert _act(owner, oid, "fulfillment", fulfillment="fulfilled").status_code == 303
    undo = _act(owner, oid, "fulfillment", fulfillment="unfulfilled")  # a mis-click undone
    assert undo.status_code == 303
    assert _bik_view(owner, oid)["fulfillmentStatus"] == "unfulfilled"
    assert _act(owner, oid, "status", status="DELIVERED").status_code == 303
    page = owner.get(f"/admin/orders/{oid}").text
    assert _fulfilment_menu(page) == ["fulfilled"]  # delivered: the tracking link still editable
    assert 'name="tracking_url"' in page
    timeline = [message for message, _ in _timeline(page)]
    assert "Fulfilment changed to fulfilled, as the order is DELIVERED" in timeline
    refused = _act(owner, oid, "fulfillment", fulfillment="partial")
    assert refused.status_code == 409
    assert "the order is DELIVERED, so it stays fulfilled" in refused.text
    assert _bik_view(owner, oid)["fulfillmentStatus"] == "fulfilled"


def test_a_cancelled_order_offers_no_fulfilment_form(owner):
    oid = place_order(owner)["id"]
    assert _act(owner, oid, "cancel").status_code == 303
    page = owner.get(f"/admin/orders/{oid}").text
    assert "Save fulfilment" not in page and _fulfilment_menu(page) == []
    assert "This order is cancelled, so it is not shipped.</p>" in page


def test_a_cancelled_order_paid_in_cash_says_to_give_the_money_back(owner):
    oid = place_order(owner)["id"]
    assert _act(owner, oid, "paid").status_code == 303
    assert _act(owner, oid, "cancel").status_code == 303
    page = owner.get(f"/admin/orders/{oid}").text
    assert (
        "This order is cancelled, so it is not shipped. It was paid in cash: give the customer "
        "the money back directly.</p>"
    ) in page


@pytest.mark.parametrize(
    ("link", "reason"),
    [
        ("javascript:alert(1)", "Tracking link: it must start with https:// or http://."),
        (
            "https://" + "a" * 2048 + ".com",
            "Tracking link: it is longer than 2048 characters once written as a link (a space, "
            "quote or accented letter takes 3 to 12).",
        ),
        ("https://exa mple.com/x", "Tracking link: it is not a web address a customer can open."),
    ],
)
def test_a_refused_form_field_gives_one_reason_naming_the_field(owner, link, reason):
    oid = place_order(owner)["id"]
    refused = _act(owner, oid, "fulfillment", fulfillment="fulfilled", tracking_url=link)
    assert refused.status_code == 400
    assert re.findall(r'role="alert">([^<]*)</p>', refused.text) == [reason]
    assert _bik_view(owner, oid)["fulfillmentStatus"] == "unfulfilled"


@pytest.mark.parametrize(
    "amount", ["ten rupees", "1,000", "₹500", "1e400", "NaN", "Infinity", "٣", "१००", "9" * 400]
)
def test_a_refund_amount_that_is_not_plain_digits_is_refused_naming_the_field(owner, amount):
    oid = place_order(owner)["id"]
    refused = _act(owner, oid, "refund", amount=amount)
    assert refused.status_code == 400
    assert re.findall(r'role="alert">([^<]*)</p>', refused.text) == [
        "Refund amount: write it as digits, such as 1000 or 250.50 (no commas or ₹)."
    ]


NUL = "\x00"


def test_a_nul_character_anywhere_is_a_400_and_changes_nothing(owner):
    """PostgreSQL text cannot hold NUL: each of these was a 500 there."""
    oid = place_order(owner)["id"]
    for url in (
        f"/admin/?q=priya{NUL}",
        f"/admin/?q=ORD-{NUL}1001",
        f"/admin/orders.csv?q=a{NUL}b",
        f"/admin/orders/{oid}%00",
    ):
        answer = owner.get(url)
        assert answer.status_code == 400, url
        assert "NUL character" in answer.text
    tracked = _act(
        owner, oid, "fulfillment", fulfillment="partial", tracking_url=f"https://t.example/a{NUL}"
    )
    assert tracked.status_code == 400 and "NUL character" in tracked.text
    bik = _bik_view(owner, oid)
    assert (bik["fulfillmentStatus"], bik["deliveryInfo"]["trackingURL"]) == ("unfulfilled", None)


def test_a_nul_character_in_the_sign_in_form_is_a_400(admin_app):
    from tests.admin_support import add_admin, sign_in

    add_admin(admin_app)
    client = admin_app.test_client()
    answer = sign_in(client, email=f"{OWNER}{NUL}", password=f"x{NUL}")
    assert answer.status_code == 400 and "NUL character" in answer.text
    assert sign_in(client).status_code == 303  # and nothing was counted against the account


@pytest.mark.parametrize(
    ("phone", "chat"),
    [
        ("+91 98765 43210", "919876543210"),
        ("919876543210", "919876543210"),
        ("9876543210", "919876543210"),
        ("098765-43210", "919876543210"),
        ("0044 20 7946 0958", "442079460958"),
        ("+44 20 7946 0958", "442079460958"),
    ],
)
def test_the_whatsapp_link_opens_the_customers_chat_however_the_number_was_written(phone, chat):
    from bikshop.admin.display import whatsapp_link

    assert whatsapp_link(phone) == f"https://wa.me/{chat}"


def test_dashboard_amounts_read_as_on_the_customers_invoice(admin_app):
    """In the store's locale (en_IN by default): lakhs and crores, as the invoice shows them."""
    from decimal import Decimal

    from bikshop.admin.display import amounts, money

    with admin_app.test_request_context():
        assert money(Decimal("99948901.95")) == "₹9,99,48,901.95"
        assert money(Decimal("947")) == "₹947.00"
        assert amounts({"INR": Decimal("1234567.8"), "USD": Decimal("29.99")}, "INR") == (
            "₹12,34,567.80 + $29.99"
        )
