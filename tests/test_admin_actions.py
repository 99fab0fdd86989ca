"""Actions on an order: CSRF on every form, the service functions, the timeline, escaping."""

from __future__ import annotations

import contextlib
import html as html_module
import re
import sqlite3
from html.parser import HTMLParser

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.admin_support import (
    OWNER,
    add_admin,
    csrf_token,
    place_order,
    sign_in,
)
from tests.bik import place, sample_body
from tests.test_admin_auth import ADMIN_ROUTES

STATE_CHANGING = [(e, r) for e, m, r in ADMIN_ROUTES if m == "POST" and "<" in r]
VALID_FORMS = {
    "admin.change_status": {"status": "IN PROGRESS"},
    "admin.set_fulfillment": {"fulfillment": "fulfilled", "tracking_url": "https://t.example/1"},
    "admin.cancel": {},
    "admin.mark_paid": {},
    "admin.refund": {"amount": "100"},
    "admin.returned": {"amount": "100"},
}
# With the right token, each form reaches its service (a refund of an unpaid order is then
# refused by the refund rules, not by CSRF).
GOOD_TOKEN_STATUS = {"admin.refund": 409, "admin.returned": 409}


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


def test_a_tracking_link_needs_a_parcel_on_its_way(owner):
    """A link saved on an unfulfilled order was handed to Bik, and stayed there (with "Track
    your parcel" on the invoice) when the order was then cancelled, unshipped (owner probe)."""
    oid = place_order(owner)["id"]
    link = "https://track.example/AWB9"
    refused = _act(owner, oid, "fulfillment", fulfillment="unfulfilled", tracking_url=link)
    assert refused.status_code == 400
    assert "A tracking link follows a parcel on its way" in refused.text
    assert _bik_view(owner, oid)["deliveryInfo"]["trackingURL"] is None
    assert (
        _act(owner, oid, "fulfillment", fulfillment="partial", tracking_url=link).status_code == 303
    )
    # Back to unfulfilled (the parcel came back): only with the link cleared.
    kept = _act(owner, oid, "fulfillment", fulfillment="unfulfilled", tracking_url=link)
    assert kept.status_code == 400
    bik = _bik_view(owner, oid)
    assert (bik["fulfillmentStatus"], bik["deliveryInfo"]["trackingURL"]) == ("partial", link)
    cleared = _act(owner, oid, "fulfillment", fulfillment="unfulfilled", tracking_url="")
    assert cleared.status_code == 303
    bik = _bik_view(owner, oid)
    assert (bik["fulfillmentStatus"], bik["deliveryInfo"]["trackingURL"]) == ("unfulfilled", None)


def test_cancelling_a_shipped_order_asks_with_the_parcel_in_mind(owner):
    """The cancel question said nothing of a parcel already handed to the courier (owner
    probe); it does for a partly or fully fulfilled order, and not for an unshipped one."""
    warning = "A parcel is already on its way: stop it with the courier."
    oid = place_order(owner)["id"]
    assert warning not in owner.get(f"/admin/orders/{oid}").text
    link = "https://track.example/AWB7"
    assert (
        _act(owner, oid, "fulfillment", fulfillment="partial", tracking_url=link).status_code == 303
    )
    assert warning in owner.get(f"/admin/orders/{oid}").text


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
    assert "Status changed to in progress" in by_admin
    # In the owner's words, not Bik's JSON keys.
    assert {"Fulfilment changed to fulfilled", "Status changed to delivered"} <= set(by_admin)
    assert any("Paid ₹947.00 by cash" in m for m in by_admin)  # the timeline shows money
    assert timeline[-1][1] == "bik"  # placed, the oldest entry, at the bottom


def test_an_illegal_move_is_refused_with_the_reason(owner):
    oid = place_order(owner)["id"]
    assert _act(owner, oid, "status", status="DELIVERED").status_code == 303
    refused = _act(owner, oid, "status", status="ORDERED")
    assert refused.status_code == 409
    assert "Cannot change status from delivered to ordered; delivered is final" in refused.text
    cancel = _act(owner, oid, "cancel")
    assert cancel.status_code == 409 and "delivered is final" in cancel.text
    assert _bik_view(owner, oid)["status"] == "DELIVERED"


def test_cancel_then_cash_received_is_refused(owner):
    oid = place_order(owner)["id"]
    assert _act(owner, oid, "cancel").status_code == 303
    assert _bik_view(owner, oid)["status"] == "CANCELLED"
    refused = _act(owner, oid, "paid")
    assert refused.status_code == 409
    assert "A cancelled order cannot be marked paid" in refused.text
    assert _bik_view(owner, oid)["paymentStatus"] == "voided"  # still unpaid, and never to be


def test_a_bad_tracking_link_is_refused_and_nothing_stored(owner):
    oid = place_order(owner)["id"]
    for link in (
        "javascript:alert(1)",
        "ftp://files.example/x",
        "not a link",
        "https://" + "a" * 2048,
        "https://x",  # no phone reaches a bare name (a dashboard probe)
        "https://tracking/AWB123",
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


@pytest.mark.parametrize(
    "typed, stored",
    [
        ("dtdc.in/track?cn=D123", "https://dtdc.in/track?cn=D123"),
        ("www.delhivery.com/track/package/123", "https://www.delhivery.com/track/package/123"),
        ("  shiprocket.co  ", "https://shiprocket.co"),
        # An accented host, as a browser sends it (it was refused, percent-encoded).
        ("https://exämple.in/t?id=1", "https://xn--exmple-cua.in/t?id=1"),
        ("https://Kuriér.example:8443/t", "https://xn--kurir-esa.example:8443/t"),
        ("https://1.2.3.4/t", "https://1.2.3.4/t"),
    ],
)
def test_a_tracking_link_pasted_without_https_gets_it(owner, typed, stored):
    """Couriers print their links without a scheme: the form takes them (the browser's own
    URL check, which refused them with a bubble the app could not word, is off)."""
    oid = place_order(owner)["id"]
    page = owner.get(f"/admin/orders/{oid}").text
    assert 'type="url"' not in page
    answer = _act(owner, oid, "fulfillment", fulfillment="fulfilled", tracking_url=typed)
    assert answer.status_code == 303, answer.text
    assert _bik_view(owner, oid)["deliveryInfo"]["trackingURL"] == stored


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
    assert owner.get("/admin/orders/ord-999999").status_code == 404


def test_an_order_address_typed_by_hand_in_any_case_or_by_number_leads_to_it(owner):
    """``ord-1001`` (as the search box takes it; desktop probe: a 404), ``1001`` and ``#1001``
    all lead to ORD-1001."""
    place_order(owner)
    for typed in ("ord-1001", "Ord-1001", "1001", "%231001"):
        answer = owner.get(f"/admin/orders/{typed}")
        assert answer.status_code == 303, typed
        assert answer.headers["Location"].endswith("/admin/orders/ORD-1001"), typed


def _seen(html: str, action: str = "refund") -> str:
    """The ``seen`` the page's form for ``action`` carries (refund and returned: what went
    back; fulfillment: the fulfilment and tracking link shown)."""
    forms = re.findall(r'<form method="post" action="([^"]*)"(.*?)</form>', html, re.S)
    (seen,) = {
        value
        for target, body in forms
        if target.endswith("/" + action)
        for value in re.findall(r'<input type="hidden" name="seen" value="([^"]*)">', body)
    }
    return seen


def _form_values(html: str, action: str) -> dict:
    """What the page's form for ``action`` would send as it stands: its hidden fields, text
    inputs and the selected option of each menu."""
    (body,) = [
        body
        for target, body in re.findall(
            r'<form method="post" action="([^"]*)"(.*?)</form>', html, re.S
        )
        if target.endswith("/" + action)
    ]
    values = {
        name: html_module.unescape(value)
        for name, value in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', body)
    }
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', body, re.S):
        (values[name],) = re.findall(r'<option selected value="([^"]*)"', options) or re.findall(
            r'<option value="([^"]*)" selected', options
        )
    return values


def test_saving_fulfilment_from_a_page_left_open_does_not_undo_a_newer_change(owner):
    """Two tabs on one order: one ships it with a tracking link, then the other, opened before
    that, pastes another link (its menu still says unfulfilled). Saving the old page's copy
    un-shipped the order and replaced the link Bik shows the customer (a dashboard probe)."""
    oid = place_order(owner)["id"]
    old_tab = owner.get(f"/admin/orders/{oid}").text
    shipped = "https://courier.example/track/AAA111"
    assert (
        _act(owner, oid, "fulfillment", fulfillment="fulfilled", tracking_url=shipped).status_code
        == 303
    )
    stale = {
        "csrf_token": csrf_token(old_tab),
        "seen": _seen(old_tab, "fulfillment"),
        "fulfillment": "unfulfilled",
        "tracking_url": "https://courier.example/track/BBB222",
    }

    refused = owner.post(f"/admin/orders/{oid}/fulfillment", data=stale)

    assert refused.status_code == 409
    assert "The fulfilment of #1001 changed since this page was opened" in refused.text
    assert "it is now fulfilled, tracking link https://courier.example/track/AAA111" in refused.text
    assert (
        "you asked for unfulfilled, tracking link https://courier.example/track/BBB222"
        in refused.text
    )
    bik = _bik_view(owner, oid)
    assert (bik["fulfillmentStatus"], bik["deliveryInfo"]["trackingURL"]) == ("fulfilled", shipped)
    # The form on that page shows the order as it is now, not the refused values: saving it
    # again unchanged (a retry) changes nothing; it used to un-ship the order (owner probe).
    form = _form_values(refused.text, "fulfillment")
    assert (form["fulfillment"], form["tracking_url"]) == ("fulfilled", shipped)
    retry = {**form, "csrf_token": csrf_token(refused.text)}
    assert owner.post(f"/admin/orders/{oid}/fulfillment", data=retry).status_code == 303
    bik = _bik_view(owner, oid)
    assert (bik["fulfillmentStatus"], bik["deliveryInfo"]["trackingURL"]) == ("fulfilled", shipped)
    # The page that said so is current: the owner's change, made again there, goes through.
    again = {**retry, "tracking_url": stale["tracking_url"]}
    assert owner.post(f"/admin/orders/{oid}/fulfillment", data=again).status_code == 303
    assert _bik_view(owner, oid)["deliveryInfo"]["trackingURL"] == stale["tracking_url"]


def test_a_second_tap_on_refund_refunds_once(make_app):
    """Tapping "Yes, refund through Razorpay" again while the first tap's answer is on its way
    (a slow phone network), or from a page left open, asked Razorpay for a second refund of the
    same amount. Each question carries what the page showed; once money went back, the same
    question is refused and nothing is sent to Razorpay."""
    from tests.admin_support import ADMIN_CONFIG, add_admin, sign_in
    from tests.fake_razorpay import pay_only_link, shop_with_open_link

    with shop_with_open_link(make_app, settings=ADMIN_CONFIG) as (app, client, fake, order_id, _):
        assert pay_only_link(client, fake)["outcome"] == "paid"
        add_admin(app)
        sign_in(client)
        page = client.get(f"/admin/orders/{order_id}").text
        form = {"csrf_token": csrf_token(page), "seen": _seen(page), "amount": "300"}
        first = client.post(f"/admin/orders/{order_id}/refund", data=form)
        assert first.status_code == 303
        told = client.get(first.headers["Location"]).text
        assert "Refund of ₹300.00 asked of Razorpay; it shows under Payments as pending" in told
        assert "and the order as partly refunded once Razorpay confirms" in told  # 300 of 947
        again = client.post(f"/admin/orders/{order_id}/refund", data=form)
        assert again.status_code == 409
        assert "Money already went back on #1001 since this page was opened" in again.text
        assert [b["amount"] for _, path, b in fake.calls if path.endswith("/refund")] == [30000]
        # Asked again from the page as it is now: a second refund, if the owner means it; the
        # rest (647 with the 300 pending) would make it refunded.
        assert _act(client, order_id, "refund", amount="300").status_code == 303
        last = _act(client, order_id, "refund", amount="347")
        assert (
            "the order as refunded once Razorpay confirms"
            in client.get(last.headers["Location"]).text
        )
        assert len([1 for _, path, _ in fake.calls if path.endswith("/refund")]) == 3


def test_refunds_from_two_devices_at_once_refund_once(make_app):
    """Two devices answer the same refund question at the same moment. On SQLite the order's
    FOR UPDATE was no lock at all: both read the refunds before either stored its own, and
    Razorpay was asked twice (an outside probe: 6 trials in 10 over gunicorn). Another
    transaction holds the order while both are sent, so both are waiting when it lets go."""
    import threading
    import time

    from tests.admin_support import ADMIN_CONFIG, add_admin, sign_in
    from tests.fake_razorpay import pay_only_link, shop_with_open_link

    with shop_with_open_link(make_app, settings=ADMIN_CONFIG) as (app, client, fake, order_id, _):
        assert pay_only_link(client, fake)["outcome"] == "paid"
        add_admin(app)
        devices = [app.test_client() for _ in range(2)]
        forms = []
        for device in devices:
            sign_in(device)
            page = device.get(f"/admin/orders/{order_id}").text
            forms.append({"csrf_token": csrf_token(page), "seen": _seen(page), "amount": "100"})
        assert forms[0]["seen"] == forms[1]["seen"]
        answers = []

        def tap(device, form):
            answers.append(device.post(f"/admin/orders/{order_id}/refund", data=form).status_code)

        pairs = zip(devices, forms, strict=True)
        taps = [threading.Thread(target=tap, args=pair) for pair in pairs]
        with holding_order(app, order_id):
            for thread in taps:
                thread.start()
            time.sleep(1.0)  # both are at the lock (or, unfixed, past the check)
        for thread in taps:
            thread.join(timeout=30)
        assert sorted(answers) == [303, 409]
        assert len([1 for _, path, _ in fake.calls if path.endswith("/refund")]) == 1


@contextlib.contextmanager
def holding_order(app, public_id: str):
    """Another transaction, outside bikshop, holding ``public_id``'s row (SQLite: the whole
    database's write lock) until the block ends."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
    else:
        connection = psycopg.connect(url.set(drivername="postgresql").render_as_string(False))
        connection.execute("SELECT 1 FROM orders WHERE public_id = %s FOR UPDATE", (public_id,))
    try:
        yield
    finally:
        connection.rollback()
        connection.close()


def test_a_second_tap_on_record_money_returned_records_it_once(owner):
    oid = place_order(owner)["id"]
    assert _act(owner, oid, "paid").status_code == 303
    page = owner.get(f"/admin/orders/{oid}").text
    form = {"csrf_token": csrf_token(page), "seen": _seen(page, "returned"), "amount": "100"}
    assert owner.post(f"/admin/orders/{oid}/returned", data=form).status_code == 303
    again = owner.post(f"/admin/orders/{oid}/returned", data=form)
    assert again.status_code == 409 and "nothing more was done" in again.text
    assert _bik_view(owner, oid)["paymentStatus"] == "partially_refunded"
    page = owner.get(f"/admin/orders/{oid}").text
    assert "Refunded" in page and "−₹100.00" in page and "−₹200.00" not in page


def test_refund_part_of_an_online_payment_from_the_order_page(make_app):
    from tests.admin_support import ADMIN_CONFIG, add_admin, sign_in
    from tests.fake_razorpay import pay_only_link, shop_with_open_link

    with shop_with_open_link(make_app, settings=ADMIN_CONFIG) as (app, client, fake, order_id, _):
        assert pay_only_link(client, fake)["outcome"] == "paid"
        add_admin(app)
        sign_in(client)
        refund = _order_forms(client.get(f"/admin/orders/{order_id}").text)["refund"]
        assert refund["opener"] == "Refund…"  # it asks first, as every irreversible action
        assert refund["button"] == "Yes, refund through Razorpay"
        assert "Refund #1001 through Razorpay? Razorpay sends the amount back" in refund["text"]
        assert "(empty: everything left, ₹947.00). A refund cannot be undone." in refund["text"]

        too_much = _act(client, order_id, "refund", amount="947.01")
        assert too_much.status_code == 422 and "at most ₹947.00 is left to refund" in too_much.text
        # The question stays open with the amount as typed, to correct it.
        assert 'id="confirm-refund" open>' in too_much.text and 'value="947.01"' in too_much.text
        too_little = _act(client, order_id, "refund", amount="0.50")
        assert too_little.status_code == 422 and "no less than ₹1.00" in too_little.text
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
        assert held.status_code == 422 and "at most ₹346.50 is left to refund" in held.text
        # The question offers what is left once the pending 100 is held back too.
        page = client.get(f"/admin/orders/{order_id}").text
        assert "(empty: everything left, ₹346.50)" in _order_forms(page)["refund"]["text"]
        assert 'placeholder="346.50"' in page
        fake.lose_refund_answers = 1  # the rest, pending as well: nothing is left to ask
        assert _act(client, order_id, "refund").status_code == 503
        assert _act(client, order_id, "cancel").status_code == 303
        page = client.get(f"/admin/orders/{order_id}").text
        assert "refund" not in _order_forms(page)
        assert "is being refunded: Razorpay has yet to confirm it." in page
    assert _bik_view(client, order_id)["paymentStatus"] == "partially_refunded"
    timeline = _timeline(client.get(f"/admin/orders/{order_id}").text)
    assert any("Refund of ₹500.50" in m and who == f"admin:{OWNER}" for m, who in timeline)
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


@pytest.mark.parametrize(
    "action", ["status", "cancel", "fulfillment", "paid", "refund", "returned"]
)
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
    assert "Fulfilment changed to fulfilled, as the order is delivered" in timeline
    refused = _act(owner, oid, "fulfillment", fulfillment="partial")
    assert refused.status_code == 409
    assert "the order is delivered, so it stays fulfilled" in refused.text
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
        "the money back directly, then record it below.</p>"
    ) in page


def _invoice(client, order):
    return client.get(order["invoiceUrl"].split("localhost", 1)[-1]).text


def test_money_returned_outside_razorpay_is_recorded_in_parts_and_told_to_bik(owner):
    """A cash order cancelled after payment: the owner hands the money back and records it;
    Bik, the invoice and the timeline then say refunded, not "the shop will refund"."""
    order = place_order(owner)
    oid = order["id"]
    assert _act(owner, oid, "paid").status_code == 303
    assert _act(owner, oid, "cancel").status_code == 303
    assert "you paid ₹947.00, which the shop will refund" in _invoice(owner, order)
    form = _order_forms(owner.get(f"/admin/orders/{oid}").text)["returned"]
    assert form["opener"] == "Record money returned…"
    assert form["button"] == "Yes, money returned"
    assert "Record money returned to the customer for #1001?" in form["text"]
    assert "bikshop sends nothing. Empty: everything left, ₹947.00." in form["text"]

    part = _act(owner, oid, "returned", amount="400")
    assert part.status_code == 303
    assert "money returned" in owner.get(part.headers["Location"]).text
    assert _bik_view(owner, oid)["paymentStatus"] == "partially_refunded"
    assert (
        "₹400.00 of your payment is refunded; the shop will refund the other ₹547.00"
        in _invoice(owner, order)
    )
    assert 'placeholder="547.00"' in owner.get(f"/admin/orders/{oid}").text

    rest = _act(owner, oid, "returned")  # empty: everything left
    assert rest.status_code == 303
    assert _bik_view(owner, oid)["paymentStatus"] == "refunded"
    invoice = _invoice(owner, order)
    assert "your payment was refunded" in invoice and "−₹947.00" in invoice
    page = owner.get(f"/admin/orders/{oid}").text
    assert "Record money returned" not in page and "record it below" not in page
    messages = [m for m, who in _timeline(page) if who == f"admin:{OWNER}"]
    assert (
        "Returned ₹400.00 to the customer outside Razorpay (₹400.00 of ₹947.00 in all)" in messages
    )
    assert (
        "Returned ₹547.00 to the customer outside Razorpay (₹947.00 of ₹947.00 in all)" in messages
    )

    again = _act(owner, oid, "returned", amount="1")
    assert again.status_code == 409 and "#1001 is refunded" in again.text


def test_money_returned_for_an_order_paid_before_bik_placed_it(owner):
    order = place(owner, {**sample_body(), "paymentPending": False}).json["order"]
    page = owner.get(f"/admin/orders/{order['id']}").text
    assert "Record money returned" in page  # a return after delivery, not only a cancel
    assert _act(owner, order["id"], "returned").status_code == 303
    assert _bik_view(owner, order["id"])["paymentStatus"] == "refunded"


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("947.01", "at most ₹947.00 is left to return"),
        ("0", "enter an amount above 0 with at most 2 decimals"),
        ("1.005", "enter an amount above 0 with at most 2 decimals"),
        ("1,000", "write it as digits"),
    ],
)
def test_a_wrong_returned_amount_is_refused_and_nothing_changes(owner, amount, reason):
    oid = place_order(owner)["id"]
    assert _act(owner, oid, "paid").status_code == 303
    before = _bik_view(owner, oid)
    refused = _act(owner, oid, "returned", amount=amount)
    assert refused.status_code in (400, 422) and reason in refused.text
    assert 'id="confirm-returned" open>' in refused.text  # the question stays open to correct
    assert _bik_view(owner, oid) == before


@pytest.mark.parametrize("amount", ["947.01", "1,000"], ids=["service", "form"])
def test_a_refused_amount_is_marked_invalid_described_by_the_reason_and_focused(owner, amount):
    """The reason was a paragraph at the top of the page and the focus went to the page: a
    screen reader heard neither which field was wrong nor why (accessibility probe)."""
    oid = place_order(owner)["id"]
    assert _act(owner, oid, "paid").status_code == 303
    refused = _act(owner, oid, "returned", amount=amount)
    error = '<p class="notice bad" id="error" role="alert">(Cannot record|Amount returned:)'
    assert re.search(error, refused.text)
    field = re.search(r"<input [^>]*name=\"amount\"[^>]*>", refused.text).group(0)
    for attribute in ('aria-invalid="true"', 'aria-describedby="error"', "autofocus"):
        assert attribute in field, field
    assert "aria-invalid" not in owner.get(f"/admin/orders/{oid}").text  # only once refused


def test_each_question_is_a_group_named_by_it_and_no_form_takes_a_role(owner):
    """The questions were <form role="group">, a role a form may not take (axe
    aria-allowed-role, on every order page; accessibility probe): a div inside it is the group."""
    oid = place_order(owner)["id"]
    page = owner.get(f"/admin/orders/{oid}").text
    assert re.findall(r"<form\b[^>]*\brole=", page) == []
    groups = re.findall(r'<div class="confirm-panel" role="group" aria-labelledby="([^"]+)">', page)
    questions = re.findall(
        r'<details class="confirm[^"]*" name="confirm" id="confirm-([^"]+)"', page
    )
    assert groups == [f"ask-{key}" for key in questions] and len(groups) >= 3, (groups, questions)
    for group in groups:
        assert f'<p id="{group}"><strong>' in page


def test_an_unpaid_order_has_no_money_to_return(owner):
    oid = place_order(owner)["id"]
    assert "Record money returned" not in owner.get(f"/admin/orders/{oid}").text
    refused = _act(owner, oid, "returned")
    assert refused.status_code == 409 and "#1001 is pending" in refused.text
    assert _bik_view(owner, oid)["paymentStatus"] == "pending"


def test_two_owners_recording_the_same_return_at_once_return_it_once(admin_app):
    """Both record 500 of a 947 order at the same moment: one is recorded, the other refused
    (409 when it raced the first, 422 "at most 447 left" when it came just after), so what
    was returned never exceeds what was paid."""
    import threading

    add_admin(admin_app)
    clients = []
    for _ in range(2):
        client = admin_app.test_client()
        assert sign_in(client).status_code == 303
        clients.append(client)
    oid = place_order(clients[0])["id"]
    assert _act(clients[0], oid, "paid").status_code == 303
    pages = [c.get(f"/admin/orders/{oid}").text for c in clients]
    barrier, statuses = threading.Barrier(2), []

    def record_all(client, page):
        barrier.wait()
        answer = client.post(
            f"/admin/orders/{oid}/returned", data={"csrf_token": csrf_token(page), "amount": "500"}
        )
        statuses.append(answer.status_code)

    threads = [
        threading.Thread(target=record_all, args=pair) for pair in zip(clients, pages, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses)[0] == 303 and sorted(statuses)[1] in (409, 422, 503), statuses
    assert _bik_view(clients[0], oid)["paymentStatus"] == "partially_refunded"
    page = clients[0].get(f"/admin/orders/{oid}").text
    assert 'placeholder="447.00"' in page  # 947 - 500: one return counted
    timeline = _timeline(page)
    assert sum("outside Razorpay" in message for message, _ in timeline) == 1


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
def test_the_call_and_whatsapp_links_reach_the_customer_however_the_number_was_written(phone, chat):
    """The same international number for both: "91 98765 43210" written without its + was
    dialled as tel:919876543210, which no phone connects."""
    from bikshop.admin.display import tel_link, whatsapp_link

    assert whatsapp_link(phone) == f"https://wa.me/{chat}"
    assert tel_link(phone) == f"tel:+{chat}"


def test_a_number_that_is_not_indian_without_a_country_code_is_dialled_as_written(owner):
    """ "087 123 4567" (a trunk 0 and nine digits) was linked as tel:+910871234567, which no
    phone can dial (a dashboard probe): it is dialled as written, and offers no WhatsApp chat."""
    from bikshop.admin.display import tel_link, whatsapp_link

    assert tel_link("087 123 4567") == "tel:0871234567"
    assert whatsapp_link("087 123 4567") is None
    oid = place_order(owner, phoneNumber="087 123 4567")["id"]
    page = owner.get(f"/admin/orders/{oid}").text
    assert 'href="tel:0871234567"' in page and "wa.me" not in page


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


class _Actions(HTMLParser):
    """Each form on the order page: where it posts, its fields, its submit button, and the
    question of the <details class="confirm"> it sits in (None if it posts on one click)."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._details: list[dict] = []  # open <details>, innermost last
        self._form: dict | None = None
        self._text: list[str] | None = None  # where character data goes now

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "details":
            self._details.append({"class": attrs.get("class") or "", "summary": []})
        elif tag == "summary" and self._details:
            self._text = self._details[-1]["summary"]
        elif tag == "form":
            confirm = next((d for d in reversed(self._details) if "confirm" in d["class"]), None)
            self._form = {
                "action": attrs.get("action"),
                "fields": {},
                "confirm": confirm,
                "text": [],
                "button": [],
            }
        elif self._form is not None:
            if tag == "input" and attrs.get("type") == "hidden" and attrs.get("name"):
                self._form["fields"][attrs["name"]] = attrs.get("value")
            elif tag == "button" and attrs.get("type") == "submit":
                self._text = self._form["button"]

    def handle_endtag(self, tag):
        if tag in ("summary", "button"):
            self._text = self._form["text"] if self._form is not None else None
        elif tag == "details" and self._details:
            self._details.pop()
        elif tag == "form" and self._form is not None:
            form = self._form
            form["text"] = " ".join("".join(form["text"]).split())
            form["button"] = " ".join("".join(form["button"]).split())
            if form["confirm"] is not None:
                form["opener"] = " ".join("".join(form["confirm"]["summary"]).split())
            self.forms.append(form)
            self._form = self._text = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)
        elif self._form is not None:
            self._form["text"].append(data)


def _order_forms(html: str) -> dict[str, dict]:
    """The order page's forms by what they do: 'status DELIVERED', 'paid', 'fulfillment'..."""
    parser = _Actions()
    parser.feed(html)
    forms = {}
    for form in parser.forms:
        action = (form["action"] or "").rsplit("/", 1)[-1]
        if action == "status":
            action = f"status {form['fields']['status']}"
        forms[action] = form
    return forms


def test_an_action_that_cannot_be_undone_asks_first_and_names_the_order(owner):
    """Mark in progress, Mark delivered, Cash received and Cancel each open a question (a
    <details>, so no JavaScript is needed) holding the real button; the reversible fulfilment
    form posts at once."""
    oid = place_order(owner)["id"]
    forms = _order_forms(owner.get(f"/admin/orders/{oid}").text)
    assert set(forms) - {"logout"} == {
        "status IN PROGRESS",
        "status DELIVERED",
        "paid",
        "cancel",
        "fulfillment",
    }
    expected = {
        "status IN PROGRESS": (
            "Mark in progress…",
            "Mark #1001 in progress?",
            "Yes, mark in progress",
        ),
        "status DELIVERED": ("Mark delivered…", "Mark #1001 delivered?", "Yes, mark delivered"),
        "paid": (
            "Cash received…",
            "Record ₹947.00 received in cash for #1001?",
            "Yes, cash received",
        ),
        "cancel": ("Cancel this order…", "Cancel #1001?", "Yes, cancel #1001"),
    }
    for action, (opener, question, button) in expected.items():
        form = forms[action]
        assert form["confirm"] is not None, f"{action} posts on one click"
        assert form["opener"] == opener
        assert form["text"].startswith(f"{question} This cannot be undone")
        assert form["button"] == button
        assert "Keep as is" in form["text"]
        assert form["fields"]["csrf_token"]
    assert forms["fulfillment"]["confirm"] is None
    assert forms["fulfillment"]["button"] == "Save fulfilment"


def test_confirming_posts_exactly_what_the_one_click_form_did(owner):
    """The confirmed form is the action as before: the same address and fields, CSRF included,
    and what the owner chose happens only then."""
    oid = place_order(owner)["id"]
    page = owner.get(f"/admin/orders/{oid}")
    forms = _order_forms(page.text)
    assert _bik_view(owner, oid)["status"] == "ORDERED"  # opening the page changed nothing
    delivered = forms["status DELIVERED"]
    assert delivered["action"] == f"/admin/orders/{oid}/status"
    assert delivered["fields"] == {"csrf_token": csrf_token(page.text), "status": "DELIVERED"}
    answer = owner.post(delivered["action"], data=delivered["fields"])
    assert answer.status_code == 303
    assert "Status changed to delivered." in owner.get(answer.headers["Location"]).text
    bik = _bik_view(owner, oid)
    assert (bik["status"], bik["fulfillmentStatus"]) == ("DELIVERED", "fulfilled")

    forms = _order_forms(owner.get(f"/admin/orders/{oid}").text)
    assert set(forms) - {"logout"} == {"paid", "fulfillment"}  # delivered: no more moves
    assert owner.post(forms["paid"]["action"], data=forms["paid"]["fields"]).status_code == 303
    assert _bik_view(owner, oid)["paymentStatus"] == "paid"


def test_a_paid_order_is_told_that_cancelling_leaves_the_money_to_refund(owner):
    oid = place_order(owner)["id"]
    assert _act(owner, oid, "paid").status_code == 303
    cancel = _order_forms(owner.get(f"/admin/orders/{oid}").text)["cancel"]
    assert "Money already paid is refunded separately." in cancel["text"]


PILL = re.compile(r'<span class="pill pill-[a-z]+">([^<]*)</span>')


def test_pills_name_every_state_in_sentence_case_while_bik_keeps_its_values(owner):
    """The pills read Ordered, Pending, Unfulfilled (they mixed ORDERED with pending); the
    stored values, the filters' values in the URL and Bik's getOrder stay as they were."""
    shipped = place_order(owner)["id"]
    cancelled = place_order(owner)["id"]
    place_order(owner)
    assert _act(owner, shipped, "fulfillment", fulfillment="partial").status_code == 303
    assert _act(owner, shipped, "status", status="IN PROGRESS").status_code == 303
    assert _act(owner, shipped, "paid").status_code == 303
    assert _act(owner, cancelled, "cancel").status_code == 303

    listing = owner.get("/admin/").text
    pills = set(PILL.findall(listing))
    assert pills == {
        "Ordered",
        "In progress",
        "Cancelled",
        "Pending",
        "Nothing due",  # the cancelled one's payment
        "Paid",
        "Unfulfilled",
        "Partial",
    }
    order_page = owner.get(f"/admin/orders/{shipped}").text
    assert PILL.findall(order_page) == ["In progress", "Paid", "Partial"]
    for label in pills:
        assert label[0].isupper() and label[1:] == label[1:].lower(), label

    # The words changed, not the values: filters and Bik read them as before.
    assert '<option value="IN PROGRESS">In progress</option>' in listing
    assert '<option value="partially_refunded">Partially refunded</option>' in listing
    in_progress = owner.get("/admin/", query_string={"status": "IN PROGRESS"}).text
    assert re.findall(r"<strong>(#\d+)</strong>", in_progress) == ["#1001"]
    bik = _bik_view(owner, shipped)
    assert (bik["status"], bik["paymentStatus"], bik["fulfillmentStatus"]) == (
        "IN PROGRESS",
        "paid",
        "partial",
    )
    new = _bik_view(owner, "ORD-1003")
    assert (new["status"], new["paymentStatus"], new["fulfillmentStatus"]) == (
        "ORDERED",
        "pending",
        "unfulfilled",
    )


def test_the_label_of_a_state_is_in_sentence_case():
    from bikshop.admin.display import label

    assert [label(s) for s in ("ORDERED", "IN PROGRESS", "pending", "partially_refunded")] == [
        "Ordered",
        "In progress",
        "Pending",
        "Partially refunded",
    ]


def test_the_customers_email_link_writes_to_that_address_and_nothing_more(owner):
    """An email is only checked for something@something: one carrying ``?bcc=...&body=...``
    must not make the owner's mail client copy a stranger in or fill in the text."""
    email = "buyer@example.com?bcc=spy%40evil.example&subject=Refund&body=Send%20bank%20details"
    order = place_order(owner, email=email)
    html = owner.get(f"/admin/orders/{order['id']}").text
    (href,) = re.findall(r'href="(mailto:[^"]*)"', html)
    assert href == (
        "mailto:buyer@example.com%3Fbcc%3Dspy%2540evil.example%26subject%3Drefund%26body%3D"
        "send%2520bank%2520details"
    )
    assert "?" not in href and "&" not in href


def test_the_order_page_shows_the_state_bik_sends_in_the_address(owner):
    """Bik's address carries ``state`` (the owner ships from this page; it was left out)."""
    address = {
        "firstName": "Asha",
        "address1": "12 MG Road",
        "city": "Bengaluru",
        "state": "Karnataka",
        "zip": "560001",
        "country": "India",
        "countryCode": "IN",
    }
    order = place_order(owner, address=address)
    html = owner.get(f"/admin/orders/{order['id']}").text
    shown = html.split("<address>", 1)[1].split("</address>", 1)[0]
    assert "Bengaluru, Karnataka 560001" in shown  # the town line as the invoice writes it


def test_an_order_bik_placed_as_paid_is_described_as_paid_before_placing(owner):
    """``paymentPending: false``: paid at checkout, outside bikshop. Not "no payments yet", and,
    once cancelled, not "paid in cash"."""
    answer = place(owner, {**sample_body(), "paymentPending": False})
    order = answer.json["order"]
    assert order["paymentStatus"] == "paid"
    html = owner.get(f"/admin/orders/{order['id']}").text
    assert "No payments yet" not in html
    assert "Paid before Bik placed the order" in html
    assert _act(owner, order["id"], "cancel").status_code == 303
    cancelled = owner.get(f"/admin/orders/{order['id']}").text
    assert "paid in cash" not in cancelled
    assert "It was paid before Bik placed it" in cancelled


@pytest.mark.parametrize("typed", ["1001", "%231001"])
def test_an_order_address_typed_with_its_number_opens_the_order(owner, typed):
    order = place_order(owner)
    assert order["name"] == "#1001"
    answer = owner.get(f"/admin/orders/{typed}")
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/admin/orders/{order['id']}"


@pytest.mark.parametrize("typed", ["9999", "99999999999999999999", "nope"])
def test_a_dashboard_404_leads_back_to_the_orders(owner, typed):
    place_order(owner)
    answer = owner.get(f"/admin/orders/{typed}")
    assert answer.status_code == 404
    assert '<a href="/admin/">All orders</a>' in answer.text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Paid 123456.5 INR by upi", "Paid ₹1,23,456.50 by upi"),
        ("Refunded 1.5 USD (1.5 USD of 14 USD in all)", "Refunded $1.50 ($1.50 of $14.00 in all)"),
        ("Payment link plink_947 INR made", "Payment link plink_947 INR made"),
        ("draft nb_1715 INR, ORD-1002 and 1,000 INR", "draft nb_1715 INR, ORD-1002 and 1,000 INR"),
        (
            "947 XYZ is no currency; 947 INRS is no code",
            "947 XYZ is no currency; 947 INRS is no code",
        ),
    ],
)
def test_amounts_in_timeline_sentences_read_as_money(admin_app, text, shown):
    from bikshop.admin.display import with_money

    with admin_app.test_request_context():
        assert with_money(text) == shown


@pytest.mark.parametrize("how", ["underpaid", "paid_twice"])
def test_money_razorpay_holds_that_settled_nothing_is_flagged_on_the_order(make_app, how):
    """A link paid with the wrong amount, or paid after the owner recorded cash: the money is at
    Razorpay and only the timeline told of it. The Payments box now says so, with the amount
    actually received."""
    from tests.admin_support import ADMIN_CONFIG
    from tests.fake_razorpay import post_webhook, shop_with_open_link

    shop = shop_with_open_link(make_app, settings=ADMIN_CONFIG)
    with shop as (app, client, fake, order_id, invoice):
        add_admin(app)
        sign_in(client)
        link = fake.only_link()
        assert "did not settle" not in client.get(f"/admin/orders/{order_id}").text
        if how == "paid_twice":
            assert _act(client, order_id, "paid").status_code == 303
        fake.pay(link["id"], deliver=False, amount_paid=50000 if how == "underpaid" else None)
        assert post_webhook(client, *fake.paid_event(link["id"])).status_code == 200
        page = " ".join(client.get(f"/admin/orders/{order_id}").text.split())
        customer = client.get(invoice).get_data(as_text=True)
    received = "₹500.00" if how == "underpaid" else "₹947.00"
    assert f"Razorpay received {received} through link " in page
    assert "did not settle this order (the timeline says why)" in page
    extra = "We also received ₹947.00 from you through a payment link, which this order did not"
    if how == "underpaid":
        assert "₹947.00 · Paid (₹500.00 received)" in page
        assert _bik_view(client, order_id)["paymentStatus"] == "pending"
        assert "The shop is checking it" in customer and "We also received" not in customer
    else:
        assert _bik_view(client, order_id)["paymentStatus"] == "paid"
        assert extra in customer  # the customer, too, is told the shop holds it to refund


def test_a_link_that_paid_the_order_is_not_flagged(make_app):
    from tests.admin_support import ADMIN_CONFIG
    from tests.fake_razorpay import pay_only_link, shop_with_open_link

    with shop_with_open_link(make_app, settings=ADMIN_CONFIG) as (app, client, fake, order_id, _):
        assert pay_only_link(client, fake)["outcome"] == "paid"
        add_admin(app)
        sign_in(client)
        page = client.get(f"/admin/orders/{order_id}").text
    assert "did not settle" not in page and "received)" not in page


def test_moving_a_fully_refunded_order_on_warns_that_its_money_went_back(owner):
    oid = place_order(owner)["id"]
    assert "refunded in full" not in owner.get(f"/admin/orders/{oid}").text
    assert _act(owner, oid, "paid").status_code == 303
    assert _act(owner, oid, "returned").status_code == 303
    forms = _order_forms(owner.get(f"/admin/orders/{oid}").text)
    for move in ("status IN PROGRESS", "status DELIVERED"):
        assert (
            "Its payment was refunded in full: go on only if you meant to send it anyway."
            in (forms[move]["text"])
        )


def test_money_returned_keeps_to_the_currencys_smallest_unit(owner):
    """No half yen: a JPY return is whole yen, as a Razorpay refund of it would be."""
    body = {**sample_body(currency="JPY"), "paymentPending": False}
    oid = place(owner, body).json["order"]["id"]
    refused = _act(owner, oid, "returned", amount="0.5")
    assert refused.status_code == 422
    assert "enter a whole amount above 0 (JPY has no smaller unit)" in refused.text
    assert _bik_view(owner, oid)["paymentStatus"] == "paid"
    assert _act(owner, oid, "returned", amount="100").status_code == 303
    assert _bik_view(owner, oid)["paymentStatus"] == "partially_refunded"


def test_the_order_page_names_its_tax_invoice_once_issued(make_app):
    from tests.admin_support import ADMIN_CONFIG
    from tests.invoice_support import GST_SETTINGS

    app = make_app(**ADMIN_CONFIG, **GST_SETTINGS)
    add_admin(app)
    owner = app.test_client()
    assert sign_in(owner).status_code == 303
    order = place_order(owner)
    assert "Tax invoice" not in owner.get(f"/admin/orders/{order['id']}").text
    assert owner.get(order["invoiceUrl"].split("localhost", 1)[-1]).status_code == 200  # issued
    page = owner.get(f"/admin/orders/{order['id']}").text
    assert "Tax invoice <strong>INV-00001</strong>" in page


def test_a_free_order_is_marked_paid_not_paid_in_cash(admin_app, owner):
    """A discount covering everything: ₹0 to collect. Placed since 2026-12-07 it is paid at
    once; one placed before (pending) the owner marks paid for Bik, and the page does not ask
    about ₹0.00 received in cash."""
    from sqlalchemy import update

    from bikshop.extensions import db
    from bikshop.models import Order

    free = sample_body()
    money = free["order"]
    money["discount"], money["total"] = money["subTotal"] + money["shippingCharge"], 0
    placed = place(owner, free)
    assert placed.status_code == 200, placed.text
    oid = placed.json["order"]["id"]
    assert placed.json["order"]["paymentStatus"] == "paid"
    assert "paid" not in _order_forms(owner.get(f"/admin/orders/{oid}").text)
    with admin_app.app_context():  # as an order placed before 2026-12-07 was stored
        db.session.execute(update(Order).values(payment_status="pending", paid_at=None))
        db.session.commit()
    form = _order_forms(owner.get(f"/admin/orders/{oid}").text)["paid"]
    assert form["opener"] == "Mark paid (nothing to pay)…" and form["button"] == "Yes, mark paid"
    assert form["text"].startswith("Mark #1001 paid? Its total is ₹0.00: there is nothing to")
    assert "in cash" not in form["text"]
    assert _act(owner, oid, "paid").status_code == 303
    assert _bik_view(owner, oid)["paymentStatus"] == "paid"
    timeline = [m for m, who in _timeline(owner.get(f"/admin/orders/{oid}").text) if who != "bik"]
    assert timeline[0] == "Paid ₹0.00"  # not "by cash": nothing was handed over
