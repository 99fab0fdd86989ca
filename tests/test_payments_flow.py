"""Paying an invoice through a Razorpay payment link: the Pay button, the link, the redirect back,
the webhook and reconcile-payments, against the fake Razorpay over real HTTP (test client side)."""

from __future__ import annotations

import gzip
import time
from decimal import Decimal

import pytest
import requests
from sqlalchemy import select

from bikshop.extensions import db
from bikshop.models import Order, OrderEvent, Payment, PaymentLink
from bikshop.services.payments import reference_id
from tests.fake_razorpay import (
    KEY_ID,
    KEY_SECRET,
    FakeRazorpay,
    path_of,
    pay_only_link,
    payment_status,
    place_order,
    post_webhook,
    razorpay_settings,
    sign,
)
from tests.invoice_support import pdf_text


@pytest.fixture
def shop(make_app):
    """bikshop (test client) wired to a running fake Razorpay."""
    with FakeRazorpay() as fake:
        app = make_app(**razorpay_settings(fake), PUBLIC_URL="https://shop.example.com")
        yield app, app.test_client(), fake


def rows(app, model, *where):
    with app.app_context():
        return db.session.scalars(select(model).where(*where).order_by(model.id)).all()


def timeline(app, kind: str) -> list[OrderEvent]:
    return rows(app, OrderEvent, OrderEvent.kind == kind)


def start_payment(client, invoice: str) -> str:
    response = client.post(invoice + "/pay")
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"]


@pytest.mark.parametrize(
    ("phone", "email", "first_name", "customer"),
    [
        pytest.param(
            "(+91) 98765-43210",
            "A@B",
            "राहुल" + "x" * 200,
            {"contact": "+919876543210", "name": "राहुल" + "x" * 45},
            id="bracketed-number-undotted-email-long-name",
        ),
        pytest.param(
            "098765 43210",
            "buyer@example.co.in",
            "Asha",
            {"contact": "+919876543210", "email": "buyer@example.co.in", "name": "Asha Tester"},
            id="trunk-zero",
        ),
        pytest.param(
            "087 123 4567",  # a trunk 0 and nine digits: not readable as international
            None,
            "Asha",
            {"name": "Asha Tester"},
            id="not-international",
        ),
        pytest.param(
            "+91 1234567890123456",  # longer than E.164's 15 digits
            "buyer@example.com.",
            "Asha",
            {"name": "Asha Tester"},
            id="too-long-trailing-dot",
        ),
        pytest.param(
            "+44 (0)20 7946 0958",  # the trunk 0 in brackets is not dialled from abroad
            None,
            "Asha",
            {"contact": "+442079460958", "name": "Asha Tester"},
            id="bracketed-trunk-zero",
        ),
        pytest.param(
            "+91 (0) 98765 43210",
            None,
            "Asha",
            {"contact": "+919876543210", "name": "Asha Tester"},
            id="bracketed-trunk-zero-india",
        ),
        pytest.param(
            "087 123 4567",
            "a@b",
            " ",
            None,  # nothing Razorpay takes: no customer, not {}
            id="nothing-readable",
        ),
    ],
)
def test_a_link_names_the_customer_only_in_the_form_razorpay_takes(
    shop, phone, email, first_name, customer
):
    """Bik's phone numbers and emails are checked loosely (a phone with brackets, any x@y);
    sent to Razorpay as they came, a refusal left the order without a Pay button for good.
    The link's customer is the + and digits of the number, an email with a dotted domain and a
    name cut to 50, or those parts are left out (Razorpay does not prefill them anyway)."""
    from tests.bik import place, sample_body

    app, client, fake = shop
    body = sample_body(phoneNumber=phone, email=email)
    body["order"]["address"]["firstName"] = first_name
    if customer is None:
        body["order"]["address"]["lastName"] = None
    placed = place(client, body)
    assert placed.status_code == 200, placed.get_data(as_text=True)
    invoice = "/invoice/" + placed.get_json()["order"]["invoiceUrl"].rsplit("/", 1)[1]
    assert start_payment(client, invoice) == fake.only_link()["short_url"]
    (created,) = [body for method, path, body in fake.calls if path == "/v1/payment_links"]
    assert created.get("customer") == customer


def test_pay_button_makes_a_link_with_the_order_and_redirects_to_it(shop):
    app, client, fake = shop
    order_id, invoice = place_order(client)
    page = client.get(invoice).get_data(as_text=True)
    assert "Pay ₹947" in page and f'action="{invoice}/pay"' in page
    location = start_payment(client, invoice)
    link = fake.only_link()
    assert location == link["short_url"]
    created = [body for method, path, body in fake.calls if path == "/v1/payment_links"]
    assert len(created) == 1
    body = created[0]
    assert body["amount"] == 94700 and body["currency"] == "INR"
    assert 0 < len(body["reference_id"]) <= 40
    assert body["customer"] == {
        "contact": "+919876543210",
        "email": "buyer@example.com",
        "name": "Bik Tester",
    }
    assert "#1001" in body["description"] and body["notes"]["order_id"] == order_id
    assert body["callback_url"] == f"https://shop.example.com{invoice}/paid"
    assert body["callback_method"] == "get"
    assert body["expire_by"] > time.time() + 15 * 60
    (stored,) = rows(app, PaymentLink)
    assert (stored.razorpay_id, stored.amount, stored.status) == (
        link["id"],
        Decimal("947.00"),
        "created",
    )
    assert payment_status(client, order_id) == "pending"


def test_a_second_tap_reuses_the_unexpired_link(shop):
    app, client, fake = shop
    _, invoice = place_order(client)
    assert start_payment(client, invoice) == start_payment(client, invoice)
    assert len(fake.links) == 1 and len(rows(app, PaymentLink)) == 1


def test_a_link_made_under_a_forged_host_is_never_given_to_the_customer(make_app):
    """Without BIKSHOP_PUBLIC_URL, a POST to the Pay button with a forged Host made a link whose
    return address was that host, and every later tap reused it: the customer was sent there
    after paying (security probe). A link that does not lead back here is not reused."""
    with FakeRazorpay() as fake:
        client = make_app(**razorpay_settings(fake)).test_client()
        _, invoice = place_order(client)
        forged = client.post(invoice + "/pay", headers={"Host": "attacker.example"})
        assert forged.status_code == 303
        customers = start_payment(client, invoice)
        assert customers != forged.headers["Location"] and len(fake.links) == 2
        link = next(link for link in fake.links.values() if link["short_url"] == customers)
        assert link["callback_url"] == f"http://localhost{invoice}/paid"
        assert start_payment(client, invoice) == customers  # reused from now on
        assert len(fake.links) == 2


def test_a_link_refused_under_a_forged_host_leaves_the_customer_their_pay_button(make_app):
    """Without BIKSHOP_PUBLIC_URL, a POST to Pay with a Host Razorpay refuses as a return
    address made Razorpay refuse the link, and the refusal held Pay back on the customer's
    own page until the order or the keys changed: one request turned off online payment for
    the order (security probe). The hold is for the return address it was refused for.
    (Which hosts Razorpay refuses it does not document: the fake is told one.)"""
    with FakeRazorpay() as fake:
        fake.refused_callback_hosts = {"refused.example"}
        app = make_app(**razorpay_settings(fake))
        client = app.test_client()
        _, invoice = place_order(client)
        forged = client.post(invoice + "/pay", headers={"Host": "refused.example"})
        assert forged.status_code == 502
        assert len(timeline(app, "payment_link_refused")) == 1
        assert "Pay ₹947" in client.get(invoice).get_data(as_text=True)
        assert start_payment(client, invoice) == fake.only_link()["short_url"]


def test_a_refused_link_holds_pay_back_for_the_address_it_was_refused_for(make_app):
    """The hold itself stands where asking again would be refused again: the customer is not
    sent to a Razorpay error on every tap."""
    with FakeRazorpay() as fake:
        fake.refused_callback_hosts = {"localhost"}
        app = make_app(**razorpay_settings(fake))
        client = app.test_client()
        _, invoice = place_order(client)
        assert client.post(invoice + "/pay").status_code == 502
        assert "Pay ₹947" not in client.get(invoice).get_data(as_text=True)
        calls = len(fake.calls)
        again = client.post(invoice + "/pay")
        assert (again.status_code, again.headers["Location"]) == (303, invoice)  # to the page
        assert len(fake.calls) == calls  # Razorpay not asked again


@pytest.mark.parametrize("host", ["a_b", ""])
def test_the_page_of_an_order_whose_link_was_refused_opens_whatever_the_host(make_app, host):
    """Whether a refusal holds Pay back depends on the return address the request would give;
    with a Host no address can be made from, the customer's page and PDF answered 400 (diff
    review). A page only read stands by the refusal: no Pay button, and it opens."""
    with FakeRazorpay() as fake:
        fake.refused_callback_hosts = {"localhost"}
        app = make_app(**razorpay_settings(fake))
        client = app.test_client()
        _, invoice = place_order(client)
        assert client.post(invoice + "/pay").status_code == 502  # refused: Pay held back
        page = client.get(invoice, headers={"Host": host})
        assert page.status_code == 200 and "Pay ₹947" not in page.get_data(as_text=True)
        assert client.get(invoice + ".pdf", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["a_b", "evil.example:99999", "x@y.example", ""])
def test_a_host_no_link_can_be_made_from_is_a_400_and_asks_razorpay_nothing(make_app, host):
    """Werkzeug reads a Host that is no host name as "": the link's return address was
    ``http:///invoice/…/paid``, which Razorpay refuses (security probe)."""
    with FakeRazorpay() as fake:
        app = make_app(**razorpay_settings(fake))
        client = app.test_client()
        _, invoice = place_order(client)
        answer = client.post(invoice + "/pay", headers={"Host": host})
        assert answer.status_code == 400
        assert "Send a Host header with this server" in answer.get_data(as_text=True)
        assert fake.calls == [] and timeline(app, "payment_link_refused") == []
        assert "Pay ₹947" in client.get(invoice).get_data(as_text=True)


def test_an_expired_link_is_replaced_by_a_new_attempt(shop):
    app, client, fake = shop
    order_id, invoice = place_order(client)
    start_payment(client, invoice)
    first = fake.expire(fake.only_link()["id"])
    assert (
        post_webhook(client, *fake.event("payment_link.expired", payment_link=first)).status_code
        == 200
    )
    assert payment_status(client, order_id) == "pending"
    assert "Pay ₹947" in client.get(invoice).get_data(as_text=True)
    second = start_payment(client, invoice)
    assert second != first["short_url"] and len(fake.links) == 2
    references = [link.reference_id for link in rows(app, PaymentLink)]
    assert references[0].endswith("-1") and references[1].endswith("-2")
    assert len(timeline(app, "payment_link_expired")) == 1


def test_an_adopted_link_keeps_razorpays_expiry(make_app):
    """A tap whose ask timed out after Razorpay made the link; the next tap adopts it. It was
    stored as expiring a week after that second tap, not when Razorpay expires it, and Pay
    kept sending customers to it after it expired (time probe)."""
    with FakeRazorpay() as fake:
        app = make_app(**razorpay_settings(fake))
        client = app.test_client()
        _, invoice = place_order(client)
        fake.delay = 2.0  # made, answered after bikshop's 1 s
        assert client.post(invoice + "/pay").status_code == 503
        time.sleep(1.5)  # the fake's answer, unread, is done
        fake.delay = 0
        link = fake.only_link()
        link["expire_by"] = int(time.time()) + 40 * 60  # that first tap was days ago
        assert start_payment(client, invoice) == link["short_url"]
        (stored,) = rows(app, PaymentLink)
        assert int(stored.expire_by.timestamp()) == link["expire_by"]


def test_a_duplicate_reference_adopts_the_link_razorpay_already_made(shop):
    app, client, fake = shop
    order_id, invoice = place_order(client)
    with app.app_context():
        order = db.session.scalars(select(Order)).one()
        reference = reference_id(order, 1)
    # An earlier attempt timed out after Razorpay had made the link: the same reference exists.
    made = requests.post(
        fake.url + "/v1/payment_links",
        json={
            "amount": 94700,
            "currency": "INR",
            "reference_id": reference,
            "notes": {"order_id": order_id},
        },
        auth=(KEY_ID, KEY_SECRET),
        timeout=5,
    ).json()
    assert start_payment(client, invoice) == made["short_url"]
    assert len(fake.links) == 1
    assert [link.razorpay_id for link in rows(app, PaymentLink)] == [made["id"]]


def test_a_duplicate_reference_of_someone_elses_link_is_refused_and_stores_nothing(shop):
    app, client, fake = shop
    _, invoice = place_order(client)
    with app.app_context():
        reference = reference_id(db.session.scalars(select(Order)).one(), 1)
    fake.links["plink_Other000000001"] = {
        **{
            "id": "plink_Other000000001",
            "reference_id": reference,
            "amount": 100,
            "currency": "INR",
            "notes": {"order_id": "ORD-9"},
            "status": "created",
        },
    }
    response = client.post(invoice + "/pay")
    page = response.get_data(as_text=True)
    assert response.status_code == 502  # refused for good: not the 503 that means "try again"
    assert "couldn't start the payment" in page and "Try again" not in page
    assert rows(app, PaymentLink) == []
    (refused,) = timeline(app, "payment_link_refused")
    assert "belongs to a link we did not make" in refused.message


def test_webhook_lost_the_redirect_alone_makes_it_paid(shop):
    app, client, fake = shop
    order_id, invoice = place_order(client)
    start_payment(client, invoice)
    callback = fake.pay(fake.only_link()["id"], deliver=False)
    page = client.get(path_of(callback), headers={"Accept-Encoding": "gzip"})
    assert page.status_code == 200
    # Compressed, as the invoice at its own address is (network probe: 4.4 KB, 1.5 KB so).
    assert page.headers["Content-Encoding"] == "gzip"
    assert "Paid. Thank you" in gzip.decompress(page.data).decode()
    assert payment_status(client, order_id) == "paid"
    fetches = [path for method, path, _ in fake.calls if method == "GET"]
    assert fetches == [f"/v1/payment_links/{fake.only_link()['id']}"]  # fetched, not trusted
    (payment,) = rows(app, Payment)
    assert payment.razorpay_payment_id == fake.only_link()["payments"][0]["payment_id"]
    assert (payment.amount, payment.method) == (Decimal("947.00"), "upi")


def test_a_redirect_with_a_forged_signature_changes_nothing(shop):
    app, client, fake = shop
    order_id, invoice = place_order(client)
    start_payment(client, invoice)
    link = fake.only_link()
    callback = fake.pay(link["id"], deliver=False)
    signature = callback.rsplit("razorpay_signature=", 1)[1]
    forged = callback.replace(signature, signature[::-1])
    refused = client.get(path_of(forged))
    assert refused.status_code == 400
    assert f'<a href="{invoice}">Back to your invoice</a>' in refused.get_data(as_text=True)
    unsigned = callback.split("&razorpay_signature")[0]
    assert client.get(path_of(unsigned)).status_code == 400
    message = f"{link['id']}|{link['reference_id']}|paid|pay_Forged00000000"
    other = callback.split("?")[0] + (
        f"?razorpay_payment_id=pay_Forged00000000&razorpay_payment_link_id={link['id']}"
        f"&razorpay_payment_link_reference_id={link['reference_id']}"
        f"&razorpay_payment_link_status=paid&razorpay_signature={sign('guess', message.encode())}"
    )
    assert client.get(path_of(other)).status_code == 400
    assert payment_status(client, order_id) == "pending" and rows(app, Payment) == []
    assert not [path for method, path, _ in fake.calls if method == "GET"]


@pytest.mark.parametrize("link_id", ["plink_%00x", "plink_é", "plink_x'--", "%F0%9F%92%B3"])
def test_a_redirect_with_an_id_no_razorpay_id_looks_like_is_a_400(shop, link_id):
    """A NUL (which PostgreSQL's text refuses), non-ASCII or SQL-ish link id in a hand-made
    query: a 400 like any forged one, nothing looked up, never a 500."""
    app, client, fake = shop
    order_id, invoice = place_order(client)
    start_payment(client, invoice)
    refused = client.get(
        f"{invoice}/paid?razorpay_payment_id=pay_x&razorpay_payment_link_id={link_id}"
        f"&razorpay_payment_link_status=paid&razorpay_signature={'a' * 64}"
    )
    assert refused.status_code == 400
    assert "This payment confirmation link is" in refused.get_data(as_text=True)
    assert payment_status(client, order_id) == "pending"


def test_a_redirect_with_a_bad_signature_is_refused_before_any_look_up(shop):
    """A well-formed query with a wrong signature: refused without a database query (the
    query's values are the client's until the signature says they are Razorpay's)."""
    from sqlalchemy import event

    app, client, fake = shop
    order_id, invoice = place_order(client)
    start_payment(client, invoice)
    link = fake.only_link()
    seen = []

    def statement(conn, cursor, sql, parameters, context, executemany):
        seen.append(sql)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", statement)
    try:
        refused = client.get(
            f"{invoice}/paid?razorpay_payment_id=pay_x&razorpay_payment_link_id={link['id']}"
            f"&razorpay_payment_link_status=paid&razorpay_signature={'a' * 64}"
        )
    finally:
        event.remove(engine, "before_cursor_execute", statement)
    assert refused.status_code == 400
    assert not [sql for sql in seen if "payment_links" in sql]


def test_redirect_while_razorpay_is_down_says_confirming_and_the_webhook_finishes(shop):
    app, client, fake = shop
    order_id, invoice = place_order(client)
    start_payment(client, invoice)
    link_id = fake.only_link()["id"]
    callback = fake.pay(link_id, deliver=False)
    fake.stop()
    page = client.get(path_of(callback)).get_data(as_text=True)
    assert "Payment received, confirming" in page and "Pay ₹947" not in page
    # The badge agrees with the note beside it; the note says not to pay again.
    assert 'class="badge pending">Confirming payment<' in page and "do not pay again" in page
    assert payment_status(client, order_id) == "pending"
    assert post_webhook(client, *fake.paid_event(link_id)).status_code == 200
    assert payment_status(client, order_id) == "paid"


def test_the_invoice_from_the_chat_stops_offering_pay_once_a_signed_paid_redirect_is_seen(shop):
    app, client, fake = shop
    order_id, invoice = place_order(client)
    start_payment(client, invoice)
    link_id = fake.only_link()["id"]
    before = client.get(invoice).headers["ETag"]
    callback = path_of(fake.pay(link_id, deliver=False))
    fake.stop()  # Razorpay cannot be asked: the webhook is still on its way
    assert "Payment received, confirming" in client.get(callback).get_data(as_text=True)
    client.get(callback)  # reloaded: told once

    page = client.get(invoice, headers={"If-None-Match": before})
    assert page.status_code == 200  # not a 304 of the page with the Pay button
    text = page.get_data(as_text=True)
    assert "Payment received, confirming" in text and "Pay ₹947" not in text
    paying = client.post(invoice + "/pay")  # a Pay form left open in another tab
    assert paying.status_code == 303 and paying.headers["Location"].endswith(invoice)
    assert payment_status(client, order_id) == "pending"  # the redirect alone pays nothing
    (seen,) = timeline(app, "payment_redirect_paid")
    assert link_id in seen.message and len(fake.links) == 1

    assert post_webhook(client, *fake.paid_event(link_id)).status_code == 200
    text = client.get(invoice).get_data(as_text=True)
    assert "confirming" not in text and payment_status(client, order_id) == "paid"


def test_redirect_lost_the_webhook_alone_makes_it_paid(shop):
    app, client, fake = shop
    order_id, invoice = place_order(client)
    start_payment(client, invoice)
    link_id = fake.only_link()["id"]
    fake.pay(link_id, deliver=False)
    response = post_webhook(client, *fake.paid_event(link_id))
    assert response.status_code == 200 and response.get_json()["outcome"] == "paid"
    assert payment_status(client, order_id) == "paid"
    assert "Pay ₹947" not in client.get(invoice).get_data(as_text=True)
    assert len(rows(app, Payment)) == 1


def test_both_lost_reconcile_payments_alone_makes_it_paid(shop):
    app, client, fake = shop
    order_id, invoice = place_order(client)
    start_payment(client, invoice)
    link_id = fake.only_link()["id"]
    fake.pay(link_id, deliver=False)
    runner = app.test_cli_runner()
    young = runner.invoke(args=["reconcile-payments"])  # default: links older than 15 minutes
    assert young.exit_code == 0 and "checked 0 link(s)" in young.output
    assert payment_status(client, order_id) == "pending"
    result = runner.invoke(args=["reconcile-payments", "--older-than", "0"])
    assert result.exit_code == 0, result.output
    assert f"{link_id}: paid" in result.output and "checked 1 link(s), 0 failed" in result.output
    assert payment_status(client, order_id) == "paid"
    again = runner.invoke(args=["reconcile-payments", "--older-than", "0"])
    assert "checked 0 link(s)" in again.output and len(rows(app, Payment)) == 1


def test_reconcile_payments_reports_razorpay_down_and_changes_nothing(shop):
    app, client, fake = shop
    order_id, invoice = place_order(client)
    start_payment(client, invoice)
    fake.pay(fake.only_link()["id"], deliver=False)
    fake.stop()
    result = app.test_cli_runner().invoke(args=["reconcile-payments", "--older-than", "0"])
    assert result.exit_code == 1 and "could not be reached" in result.output
    assert payment_status(client, order_id) == "pending"


@pytest.mark.parametrize("trouble", ["down", "slow"])
def test_razorpay_down_or_slow_gives_a_friendly_retry_page_and_changes_nothing(shop, trouble):
    app, client, fake = shop
    order_id, invoice = place_order(client)
    with app.app_context():
        version = db.session.scalars(select(Order)).one().version
    if trouble == "down":
        fake.stop()
    else:
        fake.delay = 2.5  # bikshop gives up after BIKSHOP_RAZORPAY_TIMEOUT=1
    started = time.monotonic()
    response = client.post(invoice + "/pay")
    elapsed = time.monotonic() - started
    page = response.get_data(as_text=True)
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert "couldn't start the payment" in page and "Nothing was charged" in page
    assert '<p class="store-name">Glow Naturals</p>' in page  # whose page this is
    # ...in the page's banner: a <header> outside <main> (inside, it was no landmark).
    assert page.index('<header class="store">') < page.index("<main>") < page.index("<h1>")
    assert f'action="{invoice}/pay"' in page  # the retry
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert elapsed < 2.0
    assert rows(app, PaymentLink) == [] and payment_status(client, order_id) == "pending"
    with app.app_context():
        assert db.session.scalars(select(Order)).one().version == version


@pytest.mark.parametrize("short_url", ["javascript:alert(1)", "data:text/html,hi", "//evil"])
def test_a_link_whose_address_is_not_a_web_address_is_never_where_pay_leads(shop, short_url):
    """Only Razorpay, over TLS, could send it; still, Pay redirects to web addresses only."""
    app, client, fake = shop
    order_id, invoice = place_order(client)
    fake.link_changes = {"short_url": short_url}
    response = client.post(invoice + "/pay")
    assert response.status_code == 503, response.headers.get("Location")
    assert short_url not in response.get_data(as_text=True)
    assert rows(app, PaymentLink) == [] and payment_status(client, order_id) == "pending"


def test_the_pay_address_opened_rather_than_posted_leads_to_the_invoice(shop):
    """After "couldn't start the payment" the address bar holds the Pay address: reloaded or
    shared, it opens the invoice again (it was a bare 405 page with no way back)."""
    app, client, fake = shop
    order_id, invoice = place_order(client)
    fake.stop()
    assert client.post(invoice + "/pay").status_code == 503
    reloaded = client.get(invoice + "/pay")
    assert reloaded.status_code == 303 and reloaded.headers["Location"].endswith(invoice)
    assert client.get("/invoice/" + "x" * 32 + "/pay").status_code == 404


def test_without_keys_there_is_no_pay_button(make_app):
    client = make_app().test_client()
    order_id, invoice = place_order(client)
    page = client.get(invoice).get_data(as_text=True)
    assert "Pay ₹" not in page and "Pay on delivery" in page
    response = client.post(invoice + "/pay")
    assert response.status_code == 303 and response.headers["Location"].endswith(invoice)


def test_pay_with_an_unknown_token_is_a_404_page(shop):
    _, client, _ = shop
    response = client.post("/invoice/" + "x" * 32 + "/pay")
    assert response.status_code == 404 and "text/html" in response.content_type


def test_razorpay_refusing_the_link_is_on_the_timeline_and_promises_no_retry(shop):
    app, client, fake = shop
    app.config["RAZORPAY_KEY_SECRET"] = "not-the-secret"  # Razorpay answers 401, every time
    order_id, invoice = place_order(client)
    response = client.post(invoice + "/pay")
    page = response.get_data(as_text=True)
    assert response.status_code == 502  # not 503: trying again in 30 seconds will not help
    assert "couldn't start the payment" in page and "the shop has been told" in page
    assert "Try again" not in page and "Nothing was charged" in page
    (refused,) = timeline(app, "payment_link_refused")
    assert "api key provided is invalid" in refused.message
    assert rows(app, PaymentLink) == [] and payment_status(client, order_id) == "pending"


def test_razorpays_rate_limit_is_a_retry_not_a_refusal(shop):
    """Razorpay's 429 comes as a refusal's body (BAD_REQUEST_ERROR), and the SDK keeps only
    that: one busy moment turned online payment off for the order until the keys changed
    (payments probe). It is a 503 with Retry-After, and the next tap makes the link."""
    app, client, fake = shop
    order_id, invoice = place_order(client)
    fake.rate_limited = 1
    response = client.post(invoice + "/pay")
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert "Nothing was charged" in response.get_data(as_text=True)
    assert timeline(app, "payment_link_refused") == []
    assert "Pay ₹947" in client.get(invoice).get_data(as_text=True)
    assert start_payment(client, invoice) == fake.only_link()["short_url"]
    assert payment_status(client, order_id) == "pending"


def test_after_a_refusal_the_invoice_offers_no_pay_until_the_keys_change(shop, make_app):
    app, client, fake = shop
    app.config["RAZORPAY_KEY_SECRET"] = "not-the-secret"  # Razorpay answers 401, every time
    _, invoice = place_order(client)
    offered = client.get(invoice)
    assert "Pay ₹947" in offered.get_data(as_text=True)
    assert client.post(invoice + "/pay").status_code == 502

    page = client.get(invoice, headers={"If-None-Match": offered.headers["ETag"]})
    assert page.status_code == 200  # not the 304 that would keep showing the old Pay button
    assert "Pay ₹947" not in page.get_data(as_text=True)
    assert "Pay on delivery" in page.get_data(as_text=True)
    again = client.post(invoice + "/pay")  # a Pay form left open in another tab
    assert again.status_code == 303 and again.headers["Location"].endswith(invoice)
    assert [path for _, path, _ in fake.calls].count("/v1/payment_links") == 1  # not asked again

    fixed = make_app(**razorpay_settings(fake)).test_client()  # the keys corrected, restarted
    page = fixed.get(invoice, headers={"If-None-Match": page.headers["ETag"]})
    assert page.status_code == 200 and "Pay ₹947" in page.get_data(as_text=True)
    assert start_payment(fixed, invoice) == fake.only_link()["short_url"]


def test_reconcile_payments_keeps_the_sdks_connection_messages_out_of_stdout(shop):
    app, client, fake = shop
    order_id, invoice = place_order(client)
    start_payment(client, invoice)
    fake.stop()
    result = app.test_cli_runner().invoke(args=["reconcile-payments", "--older-than", "0"])
    assert result.exit_code == 1
    assert "Connection failed" not in result.output
    assert result.stdout.splitlines() == ["checked 1 link(s), 1 failed"]


def test_the_paid_invoice_names_the_method_and_razorpays_reference(shop):
    """The customer's receipt says how it was paid and the payment's id at Razorpay, which the
    shop and the customer's bank both know it by (customer probe)."""
    app, client, fake = shop
    order_id, invoice = place_order(client)
    start_payment(client, invoice)
    pay_only_link(client, fake)
    payment_id = fake.links[fake.only_link()["id"]]["payments"][-1]["payment_id"]
    page = client.get(invoice).get_data(as_text=True)
    assert f" by UPI · Razorpay payment {payment_id}</p>" in page
    pdf = client.get(invoice + ".pdf").data
    assert f"by UPI · Razorpay payment {payment_id}" in " ".join(pdf_text(pdf).split())
    # The dashboard's order page words the method by the same rule.
    from tests.admin_support import add_admin, sign_in

    add_admin(app)
    owner = app.test_client()
    sign_in(owner)
    assert "Paid ₹947.00 by UPI · " in owner.get(f"/admin/orders/{order_id}").text


def test_a_pay_button_left_open_on_a_paid_order_says_nothing_more_was_charged(shop):
    """A second tab still showing Pay, pressed after the order was paid in the first: no link,
    and the invoice says the order is paid and nothing more was charged (it said nothing)."""
    app, client, fake = shop
    order_id, invoice = place_order(client)
    start_payment(client, invoice)
    pay_only_link(client, fake)
    assert payment_status(client, order_id) == "paid"
    again = client.post(invoice + "/pay")
    assert again.status_code == 303
    assert again.headers["Location"] == invoice + "?paid=already"
    page = client.get(again.headers["Location"]).get_data(as_text=True)
    assert "This order is already paid: nothing more was charged." in page
    assert "Pay ₹947" not in page and len(fake.links) == 1
    # The same address on a pending order says nothing of the kind.
    _, pending = place_order(client)
    assert "already paid" not in client.get(pending + "?paid=already").get_data(as_text=True)
    # Refunded in full since: not "already paid", which it no longer is.
    payment_id = fake.links[fake.only_link()["id"]]["payments"][-1]["payment_id"]
    post_webhook(client, *fake.process_refund(fake.refund_in_dashboard(payment_id)))
    assert payment_status(client, order_id) == "refunded"
    later = client.post(invoice + "/pay")
    page = client.get(later.headers["Location"]).get_data(as_text=True)
    assert "This order was paid and the payment refunded to you: nothing more was charged." in page
    assert "already paid" not in page and len(fake.links) == 1


@pytest.mark.parametrize("told_by", ["late webhook", "reconcile-payments"])
def test_the_invoice_says_when_the_customer_paid_not_when_bikshop_learnt_of_it(make_app, told_by):
    """A webhook Razorpay retried for hours, or a payment reconcile-payments found, stamped
    "Paid" with the time it arrived (time probe: paid 11:50 PM, shown 6:34 AM the next day).
    Razorpay's payment says when the customer paid."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    with FakeRazorpay() as fake:
        app = make_app(**razorpay_settings(fake), STORE_TIMEZONE="Asia/Kolkata")
        client = app.test_client()
        order_id, invoice = place_order(client)
        start_payment(client, invoice)
        link_id = fake.only_link()["id"]
        fake.pay(link_id, deliver=False)
        placed = datetime.now(UTC) - timedelta(days=2)
        paid = int((placed + timedelta(hours=1)).timestamp())
        with app.app_context():
            db.session.execute(update(Order).values(created_at=placed))
            db.session.execute(update(PaymentLink).values(created_at=placed))
            db.session.commit()
        payment = fake.links[link_id]["payments"][-1]
        payment["created_at"] = fake.payments[payment["payment_id"]]["created_at"] = paid
        if told_by == "late webhook":
            assert post_webhook(client, *fake.paid_event(link_id)).status_code == 200
        else:
            result = app.test_cli_runner().invoke(args=["reconcile-payments", "--older-than", "0"])
            assert result.exit_code == 0, result.output
        assert payment_status(client, order_id) == "paid"
        with app.app_context():
            (stored,) = rows(app, Order)
            assert int(stored.paid_at.timestamp()) == paid
        shown = datetime.fromtimestamp(paid, UTC).astimezone(search_zone(app))
        hour = shown.strftime("%I").lstrip("0")
        assert f"Paid {shown.day} {shown:%b %Y}, {hour}:{shown:%M %p}" in client.get(invoice).text


def search_zone(app):
    from bikshop.services.search import store_zone

    with app.test_request_context():
        return store_zone()
