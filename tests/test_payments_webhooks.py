"""POST /webhooks/razorpay: signatures over the raw body, rotation, dedupe on the event id,
mismatches, out-of-order events, unknown events and refunds (test client; fake Razorpay)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from bikshop.errors import ApiError
from bikshop.extensions import db
from bikshop.models import Order, OrderEvent, Payment, PaymentLink, Refund, WebhookEvent
from bikshop.services import privacy
from bikshop.services.payments import refund
from tests.fake_razorpay import (
    FakeRazorpay,
    pay_only_link,
    payment_status,
    place_order,
    post_webhook,
    razorpay_settings,
    shop_with_open_link,
    sign,
)


@pytest.fixture
def shop(make_app):
    """bikshop with one order and its payment link (not yet paid) on the fake Razorpay."""
    with shop_with_open_link(make_app) as (app, client, fake, order_id, _):
        yield app, client, fake, order_id


def rows(app, model, *where):
    with app.app_context():
        return db.session.scalars(select(model).where(*where).order_by(model.id)).all()


def kinds(app) -> list[str]:
    return [event.kind for event in rows(app, OrderEvent)]


def order_version(app) -> int:
    return rows(app, Order)[0].version


def test_the_same_webhook_ten_times_makes_one_transition_and_ten_2xx(shop):
    app, client, fake, order_id = shop
    link_id = fake.only_link()["id"]
    fake.pay(link_id, deliver=False)
    raw, headers = fake.paid_event(link_id)
    answers = [post_webhook(client, raw, headers) for _ in range(10)]
    assert [answer.status_code for answer in answers] == [200] * 10
    assert answers[0].get_json()["outcome"] == "paid"
    assert all(a.get_json()["outcome"].startswith("duplicate") for a in answers[1:])
    assert payment_status(client, order_id) == "paid"
    assert len(rows(app, Payment)) == 1 and kinds(app).count("payment_status_changed") == 1
    deliveries = rows(app, WebhookEvent)
    assert len(deliveries) == 10 and all(d.signature_valid for d in deliveries)
    assert [d.event_id for d in deliveries if d.event_id] == [headers["X-Razorpay-Event-Id"]]
    assert all(d.received_event_id == headers["X-Razorpay-Event-Id"] for d in deliveries)
    assert deliveries[0].raw_body == raw.decode() and deliveries[0].outcome == "paid"


def _tampered(fake, raw, headers):
    return raw.replace(b'"amount_paid":94700', b'"amount_paid":94800'), headers


def _wrong_secret(fake, raw, headers):
    return raw, {**headers, "X-Razorpay-Signature": sign("not-the-secret", raw)}


def _missing_header(fake, raw, headers):
    return raw, {k: v for k, v in headers.items() if k != "X-Razorpay-Signature"}


def _reserialised(fake, raw, headers):  # same JSON, other bytes: the raw body is what is signed
    return json.dumps(json.loads(raw), indent=1).encode(), headers


@pytest.mark.parametrize("spoil", [_tampered, _wrong_secret, _missing_header, _reserialised])
def test_a_bad_signature_is_a_400_and_changes_nothing(shop, spoil):
    app, client, fake, order_id = shop
    link_id = fake.only_link()["id"]
    fake.pay(link_id, deliver=False)
    raw, headers = spoil(fake, *fake.paid_event(link_id))
    version = order_version(app)
    response = post_webhook(client, raw, headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_signature"
    assert payment_status(client, order_id) == "pending" and order_version(app) == version
    assert rows(app, Payment) == [] and rows(app, PaymentLink)[0].status == "created"
    (stored,) = rows(app, WebhookEvent)
    assert stored.signature_valid is False and stored.event_id is None
    assert stored.received_event_id == headers["X-Razorpay-Event-Id"]
    assert stored.raw_body == raw.decode() and stored.outcome.startswith("rejected")
    # The genuine delivery of the same event id still gets through afterwards.
    genuine = fake.paid_event(link_id, event_id=headers["X-Razorpay-Event-Id"])
    assert post_webhook(client, *genuine).status_code == 200
    assert payment_status(client, order_id) == "paid"


def test_during_rotation_the_previous_secret_still_works(make_app):
    with FakeRazorpay(webhook_secret="old-secret") as fake:
        settings = razorpay_settings(
            fake,
            RAZORPAY_WEBHOOK_SECRET="new-secret",
            RAZORPAY_WEBHOOK_SECRET_PREVIOUS="old-secret",
        )
        client = make_app(**settings).test_client()
        order_id, invoice = place_order(client)
        client.post(invoice + "/pay")
        link_id = fake.only_link()["id"]
        fake.pay(link_id, deliver=False)
        assert post_webhook(client, *fake.paid_event(link_id)).status_code == 200  # old secret
        assert payment_status(client, order_id) == "paid"
        raw, headers = fake.event("payment_link.expired", payment_link=fake.only_link())
        headers["X-Razorpay-Signature"] = sign("new-secret", raw)
        assert post_webhook(client, raw, headers).status_code == 200  # new secret
        headers["X-Razorpay-Signature"] = sign("older-secret", raw)
        assert post_webhook(client, raw, headers).status_code == 400


def test_an_unsigned_megabyte_is_refused_and_only_its_beginning_kept(shop):
    app, client, fake, order_id = shop
    raw = b'{"event": "payment_link.paid", "pad": "' + b"x" * (1024 * 1024 - 64) + b'"}'
    response = post_webhook(client, raw, {"X-Razorpay-Signature": "00"})
    assert response.status_code == 400
    (stored,) = rows(app, WebhookEvent)
    assert stored.signature_valid is False and len(stored.raw_body) < 4200
    assert stored.raw_body.startswith(raw[:4096].decode())
    assert stored.raw_body.endswith(f"[unsigned: {len(raw)} characters, the rest not kept]")


def test_only_the_latest_unsigned_deliveries_are_kept(shop, monkeypatch):
    """Anybody can post unsigned deliveries without end: only the latest UNSIGNED_KEPT stay
    (trimmed every _TRIM_EVERY of them, here 5 and 3), and signed deliveries are never
    touched by it."""
    from bikshop.services import webhooks

    monkeypatch.setattr(webhooks, "UNSIGNED_KEPT", 5)
    monkeypatch.setattr(webhooks, "_TRIM_EVERY", 3)
    app, client, fake, order_id = shop
    signed = json.dumps({"event": "payment_link.updated", "payload": {}}).encode()
    headers = {"X-Razorpay-Signature": sign(fake.webhook_secret, signed)}
    assert post_webhook(client, signed, headers | {"X-Razorpay-Event-Id": "evt_1"}).status_code
    for n in range(40):
        forged = {"X-Razorpay-Signature": "00", "X-Razorpay-Event-Id": f"evt_forged_{n}"}
        assert post_webhook(client, b'{"n": %d}' % n, forged).status_code == 400
    kept = rows(app, WebhookEvent, WebhookEvent.signature_valid.is_(False))
    assert 5 <= len(kept) < 5 + 3
    assert kept[-1].received_event_id == "evt_forged_39"
    assert [e.received_event_id for e in rows(app, WebhookEvent, WebhookEvent.signature_valid)] == [
        "evt_1"
    ]


def test_without_a_webhook_secret_deliveries_are_refused_and_kept(make_app):
    with FakeRazorpay() as fake:
        # Only development starts without it (production refuses: test_payments_config.py).
        settings = razorpay_settings(fake, RAZORPAY_WEBHOOK_SECRET=None, ENV="development")
        client = make_app(**settings).test_client()
        raw, headers = fake.event("payment_link.paid", payment_link={"id": "plink_x"})
        response = post_webhook(client, raw, headers)
        assert response.status_code == 503 and "not configured" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "change, problem",
    [({"amount_paid": 90000}, "amount 900"), ({"currency": "USD"}, "currency")],
)
def test_an_amount_or_currency_mismatch_leaves_the_order_pending_and_says_so(shop, change, problem):
    app, client, fake, order_id = shop
    link_id = fake.only_link()["id"]
    callback = fake.pay(link_id, deliver=False, **change)
    response = post_webhook(client, *fake.paid_event(link_id))
    assert response.status_code == 200 and response.get_json()["outcome"].startswith("mismatch")
    assert problem in response.get_json()["outcome"]
    assert payment_status(client, order_id) == "pending" and rows(app, Payment) == []
    (flag,) = rows(app, OrderEvent, OrderEvent.kind == "payment_mismatch")
    assert problem in flag.message and "stays pending" in flag.message
    assert flag.message.count(problem) == 1  # the link and its payment agree: said once
    # The redirect and reconcile-payments see the same link: still pending, flagged once.
    from tests.fake_razorpay import path_of

    page = client.get(path_of(callback)).get_data(as_text=True)
    # Not "confirming ... reload to see it marked paid": that never happens on its own.
    assert "confirming" not in page and "reload" not in page
    assert "The shop is checking it against your order" in page and "Pay ₹947" not in page
    app.test_cli_runner().invoke(args=["reconcile-payments", "--older-than", "0"])
    assert payment_status(client, order_id) == "pending"
    assert kinds(app).count("payment_mismatch") == 1


def _failed_payment(link):
    return {
        "id": "pay_Failed00000001",
        "entity": "payment",
        "amount": link["amount"],
        "currency": link["currency"],
        "status": "failed",
        "captured": False,
        "method": "upi",
    }


def _authorised_only(link):
    return None, [
        {
            "payment_id": "pay_Authorised0001",
            "status": "authorized",
            "amount": link["amount"],
            "method": "upi",
        }
    ]


@pytest.mark.parametrize(
    "report, problem",
    [
        # The event's payment entity failed (or was only authorised): not captured.
        (lambda link: (_failed_payment(link), None), "pay_Failed00000001 is failed, not captured"),
        # No payment entity, and the link lists no captured payment (or none at all).
        (_authorised_only, "no captured payment"),
        (lambda link: (None, None), "no captured payment"),
    ],
    ids=["failed-payment", "authorised-only", "no-payment"],
)
def test_a_paid_report_without_a_captured_payment_leaves_the_order_pending(shop, report, problem):
    """Razorpay reports a link paid only once a payment is captured (its ``payments`` list
    holds captured payments only): a signed report that says otherwise pays nothing."""
    app, client, fake, order_id = shop
    link = fake.only_link()
    payment, payments = report(link)
    paid_link = {**link, "status": "paid", "amount_paid": link["amount"], "payments": payments}
    entities = {"payment_link": paid_link} | ({"payment": payment} if payment else {})
    response = post_webhook(client, *fake.event("payment_link.paid", **entities))

    assert response.status_code == 200
    assert (
        response.get_json()["outcome"].startswith("mismatch")
        and problem in response.get_json()["outcome"]
    )
    assert payment_status(client, order_id) == "pending" and rows(app, Payment) == []
    (flag,) = rows(app, OrderEvent, OrderEvent.kind == "payment_mismatch")
    assert problem in flag.message


def test_an_extra_payment_on_a_second_link_is_reported_as_one_to_refund(shop):
    app, client, fake, order_id = shop
    first = fake.only_link()["id"]
    fake.pay(first, deliver=False)
    assert post_webhook(client, *fake.paid_event(first)).get_json()["outcome"] == "paid"
    with app.app_context():  # a second link, as one made after the first expired
        order = db.session.scalars(select(Order)).one()
        db.session.add(
            PaymentLink(
                order_id=order.id,
                razorpay_id="plink_Second0000001",
                reference_id="second-link-ref",
                amount=order.total,
                currency="INR",
                status="created",
                short_url="https://rzp.io/i/second",
            )
        )
        db.session.commit()
    second = fake.links[first] | {"id": "plink_Second0000001"}
    payment = fake.payments[second["payments"][-1]["payment_id"]] | {"id": "pay_Second00000001"}
    second["payments"] = [second["payments"][-1] | {"payment_id": "pay_Second00000001"}]
    raw, headers = fake.event("payment_link.paid", payment_link=second, payment=payment)

    outcome = post_webhook(client, raw, headers).get_json()["outcome"]

    assert outcome == "extra payment pay_Second00000001: order already paid, refund it"
    assert kinds(app).count("payment_extra") == 1


def test_expired_arriving_after_paid_never_downgrades(shop):
    app, client, fake, order_id = shop
    link = fake.only_link()
    stale = fake.event("payment_link.expired", payment_link={**link, "status": "expired"})
    fake.pay(link["id"], deliver=False)
    assert post_webhook(client, *fake.paid_event(link["id"])).status_code == 200
    response = post_webhook(client, *stale)
    assert response.status_code == 200 and "already paid" in response.get_json()["outcome"]
    assert payment_status(client, order_id) == "paid"
    assert rows(app, PaymentLink)[0].status == "paid"


def test_cancelled_and_partially_paid_change_the_link_only(shop):
    app, client, fake, order_id = shop
    link = fake.only_link()
    partial = {**link, "status": "partially_paid", "amount_paid": 50000}
    answer = post_webhook(client, *fake.event("payment_link.partially_paid", payment_link=partial))
    assert answer.get_json()["outcome"] == "link partially paid"
    assert rows(app, PaymentLink)[0].status == "partially_paid"
    assert rows(app, PaymentLink)[0].amount_paid == Decimal("500.00")
    # Razorpay neither cancels nor expires a link once part of it is paid: a stale event that
    # says so leaves the link holding its ₹500, still to settle (payments probe: let go, the
    # invoice offered Pay for the whole ₹947 again).
    for event in ("payment_link.cancelled", "payment_link.expired"):
        moved = {**link, "status": event.rsplit(".", 1)[1], "amount_paid": 50000}
        answer = post_webhook(client, *fake.event(event, payment_link=moved))
        assert answer.status_code == 200
        (stored,) = rows(app, PaymentLink)
        assert (stored.status, stored.amount_paid) == ("partially_paid", Decimal("500.00"))
    assert payment_status(client, order_id) == "pending"
    assert "payment_partial" in kinds(app)
    assert not {"payment_link_cancelled", "payment_link_expired"} & set(kinds(app))


def test_a_failed_payment_goes_on_the_timeline(shop):
    app, client, fake, order_id = shop
    link_id = fake.only_link()["id"]
    failed = {
        "id": "pay_Failed00000001",
        "status": "failed",
        "method": "card",
        "amount": 94700,
        "currency": "INR",
        "description": "#" + link_id.removeprefix("plink_"),
        "error_description": "Your payment was declined by the bank.",
    }
    response = post_webhook(client, *fake.event("payment.failed", payment=failed))
    assert response.get_json()["outcome"] == "payment failure recorded"
    (event,) = rows(app, OrderEvent, OrderEvent.kind == "payment_failed")
    assert "declined by the bank" in event.message
    assert payment_status(client, order_id) == "pending"


def test_unknown_events_and_unknown_links_get_a_2xx_and_are_recorded(shop):
    app, client, fake, _ = shop
    unknown_link = {**fake.only_link(), "id": "plink_Unknown0000001", "status": "paid"}
    answers = [
        post_webhook(client, *fake.event("payment_link.paid", payment_link=unknown_link)),
        post_webhook(client, *fake.event("settlement.processed", settlement={"id": "setl_1"})),
        post_webhook(client, *fake.event("payment.captured", payment={"id": "pay_1"})),
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    outcomes = [event.outcome for event in rows(app, WebhookEvent)]
    assert outcomes[0] == "ignored: unknown payment link plink_Unknown0000001"
    assert outcomes[1:] == ["ignored: settlement.processed is not used",
                            "ignored: payment.captured is not used"]  # fmt: skip


def test_a_signed_body_that_is_not_an_event_is_recorded_and_acknowledged(shop):
    app, client, fake, _ = shop
    raw = b"[1, 2, 3]"
    headers = {"X-Razorpay-Signature": sign(fake.webhook_secret, raw), "X-Razorpay-Event-Id": "e1"}
    assert post_webhook(client, raw, headers).status_code == 200
    assert rows(app, WebhookEvent)[0].outcome.startswith("ignored: malformed")


def test_full_refund_through_razorpay_confirmed_by_its_webhook(shop):
    app, client, fake, order_id = shop
    assert pay_only_link(client, fake)["outcome"] == "paid"
    with app.app_context():
        order = db.session.scalars(select(Order)).one()
        row = refund(order, None, actor="admin:owner@example.com")
        assert (row.amount, row.status) == (Decimal("947.00"), "pending")
        refund_id, receipt = row.razorpay_refund_id, f"bikshop-refund-{row.id}"
    assert [body for _, path, body in fake.calls if path.endswith("/refund")] == [
        {"amount": 94700, "receipt": receipt}
    ]
    assert fake.refunds[refund_id]["receipt"] == receipt
    assert payment_status(client, order_id) == "paid"  # not until Razorpay confirms
    raw, headers = fake.process_refund(refund_id)
    for _ in range(2):
        assert post_webhook(client, raw, headers).status_code == 200
    assert payment_status(client, order_id) == "refunded"
    (order,) = rows(app, Order)
    assert order.amount_refunded == Decimal("947.00")
    assert rows(app, Refund)[0].status == "processed"
    assert rows(app, Payment)[0].amount_refunded == Decimal("947.00")


def test_partial_refunds_add_up_and_cannot_exceed_the_payment(shop):
    app, client, fake, order_id = shop
    assert pay_only_link(client, fake)["outcome"] == "paid"
    with app.app_context():
        order = db.session.scalars(select(Order)).one()
        first = refund(order, Decimal("500"), actor="admin")
        with pytest.raises(ApiError) as too_much:
            refund(order, Decimal("447.01"), actor="admin")  # 500 is reserved already
        assert too_much.value.code == 422
        first_id = first.razorpay_refund_id
    post_webhook(client, *fake.process_refund(first_id))
    assert payment_status(client, order_id) == "partially_refunded"
    with app.app_context():
        second = refund(db.session.scalars(select(Order)).one(), None, actor="admin")
        assert second.amount == Decimal("447.00")
        second_id = second.razorpay_refund_id
    post_webhook(client, *fake.process_refund(second_id))
    assert payment_status(client, order_id) == "refunded"
    assert rows(app, Order)[0].amount_refunded == Decimal("947.00")


def test_refunding_an_unpaid_order_or_while_razorpay_is_down_changes_nothing(shop):
    app, client, fake, order_id = shop
    with app.app_context():
        order = db.session.scalars(select(Order)).one()
        with pytest.raises(ApiError) as unpaid:
            refund(order, None, actor="admin")
        assert unpaid.value.code == 409
    assert pay_only_link(client, fake)["outcome"] == "paid"
    fake.stop()
    with app.app_context():
        with pytest.raises(ApiError) as down:
            refund(db.session.scalars(select(Order)).one(), None, actor="admin")
        assert down.value.code == 503
    assert payment_status(client, order_id) == "paid"
    assert [r.status for r in rows(app, Refund)] == ["failed"]


def _signed(fake, raw: bytes, event_id: str | None = None) -> tuple[bytes, dict]:
    return raw, {
        "X-Razorpay-Signature": sign(fake.webhook_secret, raw),
        "X-Razorpay-Event-Id": event_id or "evt_Malformed0001",
    }


@pytest.mark.parametrize("payment_id", [{"id": "pay_x"}, ["pay_x"], 12, None])
def test_a_signed_refund_with_a_malformed_payment_id_is_kept_and_acknowledged(shop, payment_id):
    app, client, fake, order_id = shop
    refund_entity = {"id": "rfnd_Odd0000000001", "payment_id": payment_id, "amount": 100}
    raw, headers = fake.event("refund.processed", refund=refund_entity)
    response = post_webhook(client, raw, headers)
    assert response.status_code == 200
    assert response.get_json()["outcome"].startswith("ignored: malformed")
    (stored,) = rows(app, WebhookEvent)
    assert stored.signature_valid and stored.outcome.startswith("ignored: malformed")
    assert stored.raw_body == raw.decode() and payment_status(client, order_id) == "pending"


@pytest.mark.parametrize(
    "payment",
    [
        {"id": {"nested": 1}},
        {"id": "pay_1", "currency": ["INR"]},
        {"id": "pay_1", "amount": "1"},
        {"id": "pay_1", "amount": 10**30},  # Decimal's arithmetic would overflow on it
    ],
)
def test_a_signed_link_payment_with_malformed_fields_is_kept_and_not_applied(shop, payment):
    app, client, fake, order_id = shop
    link_id = fake.only_link()["id"]
    fake.pay(link_id, deliver=False)
    raw, headers = fake.event(
        "payment_link.paid", payment_link=fake.links[link_id], payment=payment
    )
    response = post_webhook(client, raw, headers)
    assert response.status_code == 200
    assert response.get_json()["outcome"].startswith("ignored: malformed")
    assert payment_status(client, order_id) == "pending"  # reconcile-payments settles it
    app.test_cli_runner().invoke(args=["reconcile-payments", "--older-than", "0"])
    assert payment_status(client, order_id) == "paid"


def test_a_signed_body_nested_too_deep_is_kept_and_acknowledged(shop):
    app, client, fake, _ = shop
    raw = b"[" * 100_000 + b"]" * 100_000
    response = post_webhook(client, *_signed(fake, raw))
    assert response.status_code == 200
    assert response.get_json()["outcome"].startswith("ignored: malformed")
    (stored,) = rows(app, WebhookEvent)
    assert stored.signature_valid and stored.outcome.startswith("ignored: malformed")
    # Unsigned, the same body is refused as before.
    unsigned = {"X-Razorpay-Signature": "0" * 64, "X-Razorpay-Event-Id": "evt_2"}
    assert post_webhook(client, raw, unsigned).status_code == 400


@pytest.mark.parametrize("raw", [b'{"event": "x\x00"}', b'{"event": "x\\u0000", "payload": {}}'])
def test_a_body_with_a_nul_character_is_kept_signed_or_not(shop, raw):
    app, client, fake, _ = shop  # PostgreSQL's text columns cannot hold NUL
    signed = post_webhook(client, *_signed(fake, raw))
    assert signed.status_code == 200 and signed.get_json()["outcome"].startswith(
        "ignored: malformed"
    )
    unsigned = {"X-Razorpay-Signature": "0" * 64, "X-Razorpay-Event-Id": "evt_2"}
    assert post_webhook(client, raw, unsigned).status_code == 400
    assert len(rows(app, WebhookEvent)) == 2


def test_event_ids_longer_than_64_characters_are_deduplicated_exactly(shop):
    app, client, fake, order_id = shop
    link = fake.only_link()
    prefix = "evt_" + "x" * 70
    first = fake.event(
        "payment_link.partially_paid",
        payment_link={**link, "status": "partially_paid", "amount_paid": 10000},
        event_id=prefix + "-1",
    )
    second = fake.event(
        "payment_link.partially_paid",
        payment_link={**link, "status": "partially_paid", "amount_paid": 20000},
        event_id=prefix + "-2",
    )
    outcomes = [
        post_webhook(client, *delivery).get_json()["outcome"] for delivery in (first, second)
    ]
    assert outcomes == ["link partially paid", "link partially paid"]  # two events, both applied
    again = post_webhook(client, *first)
    assert again.status_code == 200 and again.get_json()["outcome"].startswith("duplicate")
    assert kinds(app).count("payment_partial") == 2
    claimed = [d.event_id for d in rows(app, WebhookEvent) if d.event_id]
    assert len(claimed) == 2 and len(set(claimed)) == 2 and all(len(k) <= 64 for k in claimed)


def _paid_shop(shop):
    app, client, fake, order_id = shop
    assert pay_only_link(client, fake)["outcome"] == "paid"
    return app, client, fake, order_id


@pytest.mark.parametrize(
    "amount, says",
    [
        ("100.005", "more decimals than INR allows"),
        ("0.50", "no less than 1 INR"),
        ("0", "no less than 1 INR"),
        ("-5", "no less than 1 INR"),
        ("947.01", "at most 947 INR is left"),
    ],
)
def test_a_refund_razorpay_would_refuse_is_refused_first_and_says_why(shop, amount, says):
    app, client, fake, order_id = _paid_shop(shop)
    with app.app_context(), pytest.raises(ApiError) as refused:
        refund(db.session.scalars(select(Order)).one(), Decimal(amount), actor="admin")
    assert refused.value.code == 422 and says in refused.value.description
    assert not [path for _, path, _ in fake.calls if path.endswith("/refund")]
    assert rows(app, Refund) == [] and payment_status(client, order_id) == "paid"


def test_a_one_rupee_refund_goes_through(shop):
    app, client, fake, order_id = _paid_shop(shop)
    with app.app_context():
        refund(db.session.scalars(select(Order)).one(), Decimal("1"), actor="admin")
    assert [body["amount"] for _, path, body in fake.calls if path.endswith("/refund")] == [100]


@pytest.mark.parametrize(
    "link_changes, payment_changes",
    [
        ({"amount_paid": 10**20}, {}),  # more money than a Numeric(12, 2) column holds
        ({"amount": 10**13, "amount_paid": 10**13}, {"amount": 10**13}),
        ({"order_id": "order_" + "x" * 100}, {}),  # longer than payment_links.razorpay_order_id
        ({}, {"id": "pay_" + "p" * 100}),  # longer than payments.razorpay_payment_id
    ],
)
def test_a_signed_event_with_values_no_column_holds_is_kept_not_a_500(
    shop, link_changes, payment_changes
):
    """PostgreSQL refuses such values at commit: the delivery used to be a 500 (and lost), so
    Razorpay retried it for a day; it is acknowledged, kept, and the order left to reconcile."""
    app, client, fake, order_id = shop
    link_id = fake.only_link()["id"]
    fake.pay(link_id, deliver=False)
    link = {**fake.links[link_id], **link_changes}
    payment = {**fake.payments[link["payments"][-1]["payment_id"]], **payment_changes}
    raw, headers = fake.event("payment_link.paid", payment_link=link, payment=payment)
    response = post_webhook(client, raw, headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["outcome"].startswith("ignored")
    (stored,) = rows(app, WebhookEvent)
    # Kept as Razorpay's ids, amounts and states; tied to no order, without the payer's details.
    assert stored.signature_valid and link["id"] in stored.raw_body
    assert stored.raw_body in (raw.decode(), privacy.stripped_body(raw.decode()))
    assert payment_status(client, order_id) == "pending" and rows(app, Payment) == []
    app.test_cli_runner().invoke(args=["reconcile-payments", "--older-than", "0"])
    assert payment_status(client, order_id) == "paid"  # Razorpay's own link, fetched, settles it


def test_a_payment_method_longer_than_its_column_still_pays_the_order(shop):
    app, client, fake, order_id = shop
    link_id = fake.only_link()["id"]
    fake.pay(link_id, deliver=False, method="emi_" + "x" * 40)
    assert post_webhook(client, *fake.paid_event(link_id)).status_code == 200
    assert payment_status(client, order_id) == "paid"
    assert rows(app, Payment)[0].method == ("emi_" + "x" * 40)[:32]


@pytest.mark.parametrize("minor", [94800, 10**20, 10**30])
def test_a_signed_refund_of_more_than_the_payment_is_kept_and_not_applied(shop, minor):
    app, client, fake, order_id = shop
    assert pay_only_link(client, fake)["outcome"] == "paid"
    payment_id = fake.only_link()["payments"][-1]["payment_id"]
    entity = {"id": "rfnd_TooMuch0000001", "payment_id": payment_id, "amount": minor}
    response = post_webhook(client, *fake.event("refund.processed", refund=entity))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["outcome"].startswith("ignored")
    assert payment_status(client, order_id) == "paid" and rows(app, Refund) == []


@pytest.mark.parametrize(
    "spoil",
    [
        lambda raw: raw.replace(b'"payment_link.paid"', b'"\\ud800"'),  # the event's name
        lambda raw: raw.replace(b'"method":"upi"', b'"method":"\\udc80upi"'),  # a stored field
    ],
)
def test_a_signed_event_with_a_lone_surrogate_is_kept_and_acknowledged(shop, spoil):
    """``\\ud800`` alone is valid JSON but no UTF-8 text: storing it was a 500 (and Razorpay's
    retries for a day). Kept as malformed, acknowledged; reconcile-payments settles the order."""
    app, client, fake, order_id = shop
    link_id = fake.only_link()["id"]
    fake.pay(link_id, deliver=False)
    raw, _ = fake.paid_event(link_id)
    spoiled = spoil(raw)
    assert spoiled != raw
    response = post_webhook(client, *_signed(fake, spoiled))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["outcome"] == "ignored: malformed event (UnicodeEncodeError)"
    (stored,) = rows(app, WebhookEvent)
    assert stored.signature_valid and stored.raw_body == spoiled.decode()
    assert payment_status(client, order_id) == "pending"
    # A surrogate pair (an emoji written as two escapes) is an ordinary character.
    emoji = raw.replace(b'"method":"upi"', b'"method":"\\ud83d\\udcb3upi"')
    paid = post_webhook(client, *_signed(fake, emoji, event_id="evt_Emoji000001"))
    assert paid.get_json()["outcome"] == "paid"


def test_a_payment_already_recorded_on_another_order_settles_nothing_else(make_app):
    """One Razorpay payment reported for a second order's link (order B's event carrying order
    A's payment): a mismatch on B's timeline and a 200, not a 500 on the unique payment id."""
    with FakeRazorpay() as fake:
        app = make_app(**razorpay_settings(fake))
        client = app.test_client()
        first, first_invoice = place_order(client)
        second, second_invoice = place_order(client, draftOrderId="nb_second")
        for invoice in (first_invoice, second_invoice):
            assert client.post(invoice + "/pay").status_code == 303
        first_link, second_link = list(fake.links)
        fake.pay(first_link, deliver=False)
        assert post_webhook(client, *fake.paid_event(first_link)).get_json()["outcome"] == "paid"
        fake.pay(second_link, deliver=False)
        taken = fake.payments[fake.links[first_link]["payments"][-1]["payment_id"]]
        raw, headers = fake.event(
            "payment_link.paid", payment_link=fake.links[second_link], payment=taken
        )
        response = post_webhook(client, raw, headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        outcome = response.get_json()["outcome"]
        assert outcome.startswith("mismatch") and f"already recorded on order {first}" in outcome
        assert payment_status(client, first) == "paid"
        assert payment_status(client, second) == "pending"
        assert len(rows(app, Payment)) == 1
        assert "payment_mismatch" in kinds(app)


def test_refunds_never_count_past_the_payment_whatever_order_razorpay_reports_them(shop):
    """Refund 947 reported failed (its amount free again), 947 refunded again, then both
    reported processed: the payment shows 947 refunded, not 1,894, and the timeline says why."""
    app, client, fake, order_id = shop
    assert pay_only_link(client, fake)["outcome"] == "paid"
    payment_id = fake.only_link()["payments"][-1]["payment_id"]
    first = fake.refund_in_dashboard(payment_id)
    assert post_webhook(client, *fake.fail_refund(first)).status_code == 200
    assert payment_status(client, order_id) == "paid"  # the 947 may be refunded again
    second = fake.refund_in_dashboard(payment_id)
    for refund_id in (second, first):
        response = post_webhook(client, *fake.process_refund(refund_id))
        assert response.status_code == 200, response.get_data(as_text=True)
    (payment,) = rows(app, Payment)
    assert payment.amount_refunded <= payment.amount == Decimal("947.00")
    assert rows(app, Order)[0].amount_refunded == Decimal("947.00")
    assert payment_status(client, order_id) == "refunded"
    assert "refund_unexpected" in kinds(app)


def test_razorpays_deliveries_refused_for_their_signature_are_told_on_the_dashboard(make_app):
    """A webhook secret that is not Razorpay's refused every delivery, and only a warning in
    the log said so: paid orders stayed "pending" with nothing on the dashboard (self-hoster
    probe). Razorpay-shaped deliveries refused since the last accepted one are told on the
    orders page, naming the setting; a scanner's junk is not; an accepted delivery ends it."""
    from tests.admin_support import ADMIN_CONFIG, add_admin, sign_in

    with shop_with_open_link(make_app, settings=ADMIN_CONFIG) as (app, client, fake, order_id, _):
        add_admin(app)
        owner = app.test_client()
        assert sign_in(owner).status_code == 303
        warning = "BIKSHOP_RAZORPAY_WEBHOOK_SECRET"
        link_id = fake.only_link()["id"]
        fake.pay(link_id, deliver=False)
        junk = client.post("/webhooks/razorpay", data=b'{"hello": 1}', headers={})
        assert junk.status_code == 400
        raw, headers = fake.paid_event(link_id)
        # Razorpay's shape without its two headers (a forger's, not a delivery): not counted.
        assert client.post("/webhooks/razorpay", data=raw).status_code == 400
        assert warning not in owner.get("/admin/").get_data(as_text=True)
        mistyped = {**headers, "X-Razorpay-Signature": sign("not-the-secret", raw)}
        assert post_webhook(client, raw, mistyped).status_code == 400
        assert post_webhook(client, raw, mistyped).status_code == 400  # Razorpay's retry
        page = owner.get("/admin/").get_data(as_text=True)
        assert warning in page and "2 webhook deliveries since" in page
        assert payment_status(client, order_id) == "pending"
        assert post_webhook(client, raw, headers).status_code == 200  # the secret is fixed
        assert warning not in owner.get("/admin/").get_data(as_text=True)
        assert payment_status(client, order_id) == "paid"


@pytest.mark.parametrize("event", [rb'"pay\u0000ment.captured"', rb'"\ud800"', b'"x" '])
def test_an_unsigned_razorpay_shaped_body_with_odd_text_is_a_400(make_app, event):
    """The refused delivery's event name is kept for the wrong-secret alert; an unsigned body
    naming its event with a NUL or a lone surrogate was a 500 (no column can hold them) and
    was not stored (diff review). Only a name of Razorpay's form is kept."""
    app = make_app(RAZORPAY_WEBHOOK_SECRET="whsec-0123456789abcdef")
    body = b'{"entity": "event", "account_id": "acc_x", "event": ' + event + b"}"
    headers = {"X-Razorpay-Signature": "00", "X-Razorpay-Event-Id": "evt_1"}
    answer = app.test_client().post("/webhooks/razorpay", data=body, headers=headers)
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    stored = rows(app, WebhookEvent)
    assert [(d.signature_valid, d.event) for d in stored] == [(False, None)]
