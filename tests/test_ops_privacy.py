"""``forget-customer``: one customer's personal data goes from their orders and everything stored
with them, what GST and the books need stays, Bik's getOrder still answers, and orders still in
use are refused. Real database (SQLite and PostgreSQL), fake Razorpay over real HTTP, real PDFs."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from bikshop.extensions import db
from bikshop.models import Order, OrderEvent, Payment, PaymentLink, WebhookEvent
from bikshop.services import orders
from bikshop.services.payments import refund
from tests.bik import assert_bik_order, get, place, sample_body
from tests.fake_razorpay import (
    pay_only_link,
    post_webhook,
    shop_with_open_link,
)
from tests.invoice_support import GST_SETTINGS

PHONE = "+91 98111 22333"
EMAIL = "Priya.Sharmaxyz@Example.com"
ADDRESS = {
    "firstName": "Priya",
    "lastName": "Sharmaxyz",
    "address1": "42 Lavelle Road",
    "address2": "Flat 7Q",
    "city": "Mysuru",
    "state": "Karnataka",
    "country": "India",
    "countryCode": "IN",
    "zip": "570001",
    "phoneNumber": "+919811122333",
}
# What must be nowhere once the customer is forgotten (as stored: the email lowercased).
PERSONAL = ["9811122333", "priya.sharmaxyz", "Sharmaxyz", "Lavelle", "Mysuru", "Flat 7Q"]


def customer_order(*, pending: bool = True, **changes) -> dict:
    """Bik's sample order placed by the customer whose data is forgotten."""
    body = sample_body(phoneNumber=PHONE, email=EMAIL, address=dict(ADDRESS), **changes)
    body["paymentPending"] = pending
    return body


def forget(app, *args, input: str | None = None):
    return app.test_cli_runner().invoke(args=["forget-customer", *args], input=input)


def set_status(app, order_id: str, status: str) -> None:
    with app.app_context():
        orders.change_status(orders.find_order(order_id), status, actor="test")


def everything_stored(app) -> str:
    """Every row of every table, as text."""
    with app.app_context():
        rows = []
        for table in db.metadata.sorted_tables:
            rows += [repr(tuple(row)) for row in db.session.execute(table.select())]
        db.session.remove()
    return "\n".join(rows)


@pytest.fixture
def delivered_and_paid(make_app, tmp_path):
    """A GST shop on the fake Razorpay: the customer's order paid through a payment link (its
    webhook delivered), delivered (tax invoice issued), and its PDF downloaded (cached)."""
    settings = GST_SETTINGS | {"PDF_CACHE_DIR": str(tmp_path / "pdfs")}
    with shop_with_open_link(
        make_app,
        settings=settings,
        phoneNumber=PHONE,
        email=EMAIL,
        address=dict(ADDRESS),
    ) as shop:
        assert pay_only_link(shop.client, shop.fake)["outcome"] == "paid"
        set_status(shop.app, shop.order_id, "DELIVERED")
        assert shop.client.get(shop.invoice + ".pdf").status_code == 200
        yield shop


def test_forgetting_a_customer_leaves_no_personal_data_and_keeps_the_tax_invoice(
    delivered_and_paid, tmp_path
):
    shop = delivered_and_paid
    app, client = shop.app, shop.client
    before = everything_stored(app)
    assert all(value in before for value in PERSONAL)  # the check below would catch them
    assert os.listdir(tmp_path / "pdfs")
    with app.app_context():
        claim = db.session.scalars(
            select(WebhookEvent.event_id).where(WebhookEvent.event_id.is_not(None))
        ).one()
        payment_id = db.session.scalars(select(Payment.razorpay_payment_id)).one()

    result = forget(app, "--phone", "98111 22333", "--yes")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{shop.order_id} erased: phone, email, tags, Bik's request, name, address lines, "
        "3 Razorpay record(s), invoice link (a new one), 1 cached PDF(s); kept: tax invoice "
        "INV-00001, state, PIN code and country (place of supply), items and amounts",
        "forget-customer: erased 1 order(s), refused 0",
    ]
    after = everything_stored(app)
    assert [value for value in PERSONAL if value in after] == []
    # The old invoice link and its PDF are gone; the cache holds nothing of it.
    assert client.get(shop.invoice).status_code == 404
    assert client.get(shop.invoice + ".pdf").status_code == 404
    assert os.listdir(tmp_path / "pdfs") == []
    # Bik's getOrder still answers, in the contract's types, with what GST keeps.
    answer = get(client, shop.order_id).get_json()["order"]
    assert_bik_order(answer)
    assert answer["phoneNumber"] == "" and answer["email"] == ""
    assert answer["address"] == {
        "firstName": "", "lastName": "", "address1": "", "address2": None, "city": "",
        "state": "Karnataka", "country": "India", "countryCode": "IN", "zip": "570001",
        "phoneNumber": None,
    }  # fmt: skip
    assert answer["total"] == 947 and answer["paymentStatus"] == "paid"
    new_invoice = "/invoice/" + answer["invoiceUrl"].rsplit("/", 1)[1]
    assert new_invoice != shop.invoice
    page = client.get(new_invoice).get_data(as_text=True)
    assert "INV-00001" in page and "Karnataka" in page
    with app.app_context():
        order = db.session.scalars(select(Order)).one()
        # What dedupe and reconciliation read stays.
        assert (
            db.session.scalars(
                select(WebhookEvent.event_id).where(WebhookEvent.event_id.is_not(None))
            ).one()
            == claim
        )
        assert db.session.scalars(select(Payment.razorpay_payment_id)).one() == payment_id
        link = db.session.scalars(select(PaymentLink)).one()
        assert link.raw["id"] == link.razorpay_id and link.raw["amount"] == 94700
        assert "customer" not in link.raw and "callback_url" not in link.raw
        events = db.session.scalars(select(OrderEvent).where(OrderEvent.order_id == order.id))
        last = list(events)[-1]
        assert (last.kind, last.actor) == ("customer_data_erased", "cli")
        assert last.message == "Customer data erased on request (by cli)"
        assert order.invoice_number == 1 and order.total == 947
    # A redelivery of the event it claimed is still a duplicate.
    raw, headers = shop.fake.paid_event(shop.fake.only_link()["id"], event_id=claim)
    assert post_webhook(client, raw, headers).get_json()["outcome"].startswith("duplicate")
    # Forgotten: the same customer is not found again.
    again = forget(app, "--phone", PHONE, "--yes")
    assert again.exit_code == 0
    assert again.output == "forget-customer: no order matches; nothing to erase\n"


def test_the_same_last_digits_abroad_are_another_customer_and_stay(make_app):
    app = make_app()
    client = app.test_client()
    mine = place(client, customer_order(pending=False)).get_json()["order"]["id"]
    theirs = place(
        client, sample_body(phoneNumber="+44 98111 22333", email="other@example.com")
    ).get_json()["order"]["id"]
    set_status(app, mine, "CANCELLED")
    set_status(app, theirs, "CANCELLED")

    result = forget(app, "--phone", "098111 22333", "--yes")  # a trunk 0, no country code

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith(f"{mine} erased: ")
    assert theirs not in result.output
    assert get(client, theirs).get_json()["order"]["phoneNumber"] == "+44 98111 22333"
    # No tax invoice (no GSTIN): nothing of the address is needed, and getOrder says null.
    erased = get(client, mine).get_json()["order"]
    assert_bik_order(erased)
    assert erased["address"] is None and erased["phoneNumber"] == ""


def test_email_is_matched_in_any_case_and_a_dry_run_changes_nothing(make_app):
    app = make_app()
    client = app.test_client()
    order_id = place(client, customer_order()).get_json()["order"]["id"]
    set_status(app, order_id, "DELIVERED")
    # Placed at 00:30 IST on 8 Dec (19:00 UTC on the 7th): listed on the shop's date, as the
    # dashboard shows it (time probe: it said the UTC date).
    with app.app_context():
        db.session.execute(
            update(Order).values(created_at=datetime(2026, 12, 7, 19, 0, tzinfo=UTC))
        )
        db.session.commit()
    before = everything_stored(app)

    dry = forget(app, "--email", "PRIYA.SHARMAXYZ@example.COM", "--dry-run")

    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines() == [
        f"{order_id} would erase: phone, email, tags, Bik's request, name, address, "
        "invoice link (a new one)",
        "forget-customer: would erase 1 order(s), refused 0",
    ]
    assert everything_stored(app) == before
    # Without --yes it lists the orders (no personal data) and asks; "n" erases nothing.
    asked = forget(app, "--email", EMAIL, input="n\n")
    assert asked.exit_code == 1  # click's Abort
    assert asked.output.startswith(f"{order_id} placed 2026-12-08, delivered, payment pending")
    assert "Erase the customer's data from these 1 order(s)?" in asked.output
    assert everything_stored(app) == before
    assert [value for value in PERSONAL if value in dry.output + asked.output] == []
    confirmed = forget(app, "--email", EMAIL, input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert get(client, order_id).get_json()["order"]["email"] == ""


def test_orders_still_in_use_are_refused_saying_why_and_exit_1(make_app):
    with shop_with_open_link(
        make_app, phoneNumber=PHONE, email=EMAIL, address=dict(ADDRESS)
    ) as shop:
        app, client = shop.app, shop.client
        still_open = place(client, customer_order()).get_json()["order"]["id"]
        # Delivered with its payment link still open (cash expected, the link never paid).
        set_status(app, shop.order_id, "DELIVERED")
        before = everything_stored(app)

        result = forget(app, "--phone", PHONE, "--yes")

        assert result.exit_code == 1
        link = shop.fake.only_link()["id"]
        assert result.output.splitlines() == [
            f"{shop.order_id} refused: payment link {link} is open: run reconcile-payments "
            "(it closes expired links) or cancel the link in Razorpay first",
            f"{still_open} refused: the order is still ordered: its delivery needs the "
            "address; deliver or cancel it first",
            "forget-customer: erased 0 order(s), refused 2: run it again once each is settled",
        ]
        assert everything_stored(app) == before


def test_a_pending_refund_is_refused_until_it_settles(make_app):
    with shop_with_open_link(
        make_app, phoneNumber=PHONE, email=EMAIL, address=dict(ADDRESS)
    ) as shop:
        app = shop.app
        assert pay_only_link(shop.client, shop.fake)["outcome"] == "paid"
        set_status(app, shop.order_id, "DELIVERED")
        with app.app_context():
            refund(db.session.scalars(select(Order)).one(), None, actor="test")

        result = forget(app, "--phone", PHONE, "--yes")

        assert result.exit_code == 1
        assert result.output.splitlines()[0] == (
            f"{shop.order_id} refused: a refund is pending at Razorpay: wait until it settles "
            "(reconcile-payments)"
        )
        assert get(shop.client, shop.order_id).get_json()["order"]["email"] == EMAIL.lower()


def _delivered_sofa(make_app, price: int):
    """A GST shop and the customer's delivered, paid order of one sofa at ``price`` (GST in
    it, shipping free): (app, client, order id)."""
    app = make_app(**GST_SETTINGS)
    client = app.test_client()
    sofa = {"productId": 1, "variantId": 2, "name": "Sofa", "quantity": 1, "price": price}
    body = customer_order(
        items=[sofa], subTotal=price, shippingCharge=0, discount=0, total=price, pending=False
    )
    order_id = place(client, body).get_json()["order"]["id"]
    set_status(app, order_id, "DELIVERED")
    return app, client, order_id


def test_an_invoice_of_fifty_thousand_or_more_keeps_the_recipient_rule_46(make_app):
    app, client, order_id = _delivered_sofa(make_app, 60000)

    result = forget(app, "--phone", PHONE, "--yes")

    assert result.exit_code == 0, result.output
    # ₹60,000 with 18 % GST in it: a taxable value of ₹50,847.46, at least Rule 46(e)'s ₹50,000.
    assert "kept: tax invoice INV-00001, name and address (tax invoice of taxable value " in (
        result.output
    )
    assert "50847.46 INR" in result.output
    answer = get(client, order_id).get_json()["order"]
    assert answer["phoneNumber"] == "" and answer["email"] == ""
    assert answer["address"]["lastName"] == "Sharmaxyz"
    assert answer["address"]["address1"] == "42 Lavelle Road"
    assert answer["address"]["phoneNumber"] is None  # a phone is no part of Rule 46(e)


@pytest.mark.parametrize(
    "args, says",
    [
        ([], "give the customer's --phone or --email"),
        (["--phone", "1", "--email", "a@b.in"], "give the customer's --phone or --email"),
        (["--phone", "abc"], "--phone holds no digits"),
        (["--email", "nobody"], "--email is not an email address"),
    ],
)
def test_a_customer_named_wrongly_is_a_usage_error(app, args, says):
    result = forget(app, *args)
    assert result.exit_code == 2 and says in result.output


def export(app, *args):
    return app.test_cli_runner().invoke(args=["export-customer", *args])


def test_export_gives_the_customer_their_orders_payments_and_timeline_and_no_secret(
    delivered_and_paid,
):
    shop = delivered_and_paid
    app = shop.app
    place(shop.client, sample_body(phoneNumber="+44 98111 22333"))  # another customer
    with app.app_context():
        order = db.session.scalars(select(Order).where(Order.public_id == shop.order_id)).one()
        token = order.invoice_token
        orders.set_fulfillment(
            order, "fulfilled", actor="admin:owner@glow.in", tracking_url="https://t.example/1"
        )
        payment_id = db.session.scalars(select(Payment.razorpay_payment_id)).one()

    result = export(app, "--email", EMAIL.upper())

    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"{shop.order_id} exported",
        "export-customer: 1 order(s)",
    ]
    (exported,) = json.loads(result.stdout)["orders"]
    assert exported["id"] == shop.order_id and exported["taxInvoice"] == "INV-00001"
    assert exported["phoneNumber"] == PHONE and exported["email"] == EMAIL.lower()
    assert exported["customerName"] == "Priya Sharmaxyz"
    assert exported["address"]["address1"] == "42 Lavelle Road"
    assert exported["total"] == "947.00" and exported["currency"] == "INR"
    assert [item["name"] for item in exported["items"]] == ["Skin Renew Cream"]
    assert exported["payments"] == [
        {
            "razorpayPaymentId": payment_id,
            "amount": "947.00",
            "currency": "INR",
            "method": "upi",
            "status": "captured",
            "amountRefunded": "0.00",
            "at": exported["payments"][0]["at"],
            "payer": exported["payments"][0]["payer"],
        }
    ]
    # Everything bikshop holds of the customer (review): what Razorpay said of the payer,
    # the tags, and Bik's request as sent.
    assert exported["payments"][0]["payer"]["contact"].endswith("9811122333")
    assert exported["requestFromBik"]["order"]["email"] == EMAIL
    assert "tags" in exported
    assert exported["refunds"] == []
    kinds = [(entry["by"], entry["what"]) for entry in exported["timeline"]]
    assert kinds[0][0] == "bik" and kinds[0][1].startswith("Order placed through Bik")
    assert ("razorpay", "Paid 947 INR by upi") in kinds
    assert ("admin", "Tracking URL set to https://t.example/1") in kinds
    # Nothing secret: no invoice token, no Razorpay payload, no staff sign-in.
    assert token not in result.stdout
    assert "owner@glow.in" not in result.stdout and "callback_url" not in result.stdout
    # Once forgotten, there is nothing left to export.
    assert forget(app, "--email", EMAIL, "--yes").exit_code == 0
    after = export(app, "--email", EMAIL)
    assert after.exit_code == 0 and json.loads(after.stdout) == {"orders": []}


def test_below_fifty_thousand_of_taxable_value_the_recipient_goes(make_app):
    """Rule 46(e) names the buyer at a taxable value (before GST) of ₹50,000 or more: a ₹55,000
    order holds ₹46,610.17 of it, and its name and address were kept by its total (review)."""
    app, client, order_id = _delivered_sofa(make_app, 55000)
    assert forget(app, "--phone", PHONE, "--yes").exit_code == 0
    address = get(client, order_id).get_json()["order"]["address"]
    assert address["lastName"] == "" and address["address1"] == ""
    assert (address["state"], address["zip"]) == ("Karnataka", "570001")  # place of supply


def test_what_razorpay_sends_after_the_erasure_is_stripped_too(delivered_and_paid):
    """A refund made later in Razorpay's dashboard (a return, a complaint) came with the
    customer's contact and email, stored whole, where no command could reach them again: the
    order no longer names its customer and prune skips erased orders (review)."""
    shop = delivered_and_paid
    assert forget(shop.app, "--phone", PHONE, "--yes").exit_code == 0
    with shop.app.app_context():
        payment_id = db.session.scalars(select(Payment.razorpay_payment_id)).one()
    refund_id = shop.fake.refund_in_dashboard(payment_id)
    answer = post_webhook(shop.client, *shop.fake.process_refund(refund_id))
    assert answer.get_json()["outcome"] == "order refunded"
    assert [value for value in PERSONAL if value in everything_stored(shop.app)] == []


def test_an_event_about_no_order_is_kept_without_the_payer(delivered_and_paid):
    """A signed event bikshop does not use (payment.captured) is stored to recognise its
    redelivery; it kept the payer's contact and email for good, tied to no order that an
    erasure could find (review)."""
    shop = delivered_and_paid
    with shop.app.app_context():
        payment_id = db.session.scalars(select(Payment.razorpay_payment_id)).one()
    payment = shop.fake.payments[payment_id]
    assert "9811122333" in json.dumps(payment)  # the fake's payment names its payer
    answer = post_webhook(shop.client, *shop.fake.event("payment.captured", payment=payment))
    assert answer.get_json()["outcome"].startswith("ignored")
    with shop.app.app_context():
        body = db.session.scalars(
            select(WebhookEvent.raw_body).where(WebhookEvent.event == "payment.captured")
        ).one()
    assert payment_id in body and "9811122333" not in body and "contact" not in body


def test_a_delivered_order_never_invoiced_is_invoiced_before_its_address_goes(
    delivered_and_paid,
):
    """An order delivered before delivery issued the tax invoice, never opened, had no number:
    erased, its address went whole, and the invoice a later look issued took the shop's own
    state as the place of supply (review). It is invoiced first, where it went still known."""
    shop = delivered_and_paid
    with shop.app.app_context():
        db.session.execute(Order.__table__.update().values(invoice_number=None))
        db.session.execute(
            OrderEvent.__table__.delete().where(OrderEvent.kind == "invoice_numbered")
        )
        db.session.commit()
    assert forget(shop.app, "--phone", PHONE, "--yes").exit_code == 0
    with shop.app.app_context():
        order = db.session.scalars(select(Order)).one()
        issued = [e for e in order.events if e.kind == "invoice_numbered"]
        assert order.invoice_number is not None and len(issued) == 1
        assert issued[0].data["placeOfSupply"] == "29"  # Karnataka, from the address
        assert "taken to be" not in issued[0].message
        assert order.address["state"] == "Karnataka"
