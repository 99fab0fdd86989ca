"""Razorpay webhooks: check the signature over the raw body, store every delivery, claim the event
id in the same transaction as the state change, and hand the event to the payments service."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from marshmallow import INCLUDE, Schema, ValidationError, fields, validate
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from bikshop import razorpay_client
from bikshop.errors import ApiError
from bikshop.extensions import db
from bikshop.models import Order, Payment, PaymentLink, Refund, WebhookEvent
from bikshop.models.types import utcnow
from bikshop.money import (
    MAX_MINOR_UNITS,
    format_plain,
    from_minor_units,
    minor_units_fit,
    razorpay_takes,
)
from bikshop.services import privacy
from bikshop.services.payments import (
    apply_link_state,
    close_links_if_paid,
    read_link_entity,
    refresh_link,
    release_refunded_link,
)
from bikshop.services.refunds import RefundEntity, confirm_refund, fail_refund, row_for
from bikshop.services.states import lock_order, record

log = logging.getLogger(__name__)

ACTOR = "razorpay"
LINK_EVENTS = {
    "payment_link.paid",
    "payment_link.partially_paid",
    "payment_link.expired",
    "payment_link.cancelled",
}


class _Entity(Schema):
    class Meta:
        unknown = INCLUDE

    entity = fields.Dict(required=True)


class _Payment(Schema):
    """The fields of Razorpay's payment entity we read (the money, and how to find the link)."""

    class Meta:
        unknown = INCLUDE

    id = fields.String(validate=validate.Length(max=64))  # payments.razorpay_payment_id
    amount = fields.Integer(strict=True, validate=validate.Range(min=0, max=MAX_MINOR_UNITS))
    currency = fields.String()
    method = fields.String(allow_none=True)
    order_id = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    error_description = fields.String(allow_none=True)
    error_reason = fields.String(allow_none=True)


class _Event(Schema):
    """The envelope of every Razorpay event; the entities inside are checked where used."""

    class Meta:
        unknown = INCLUDE

    event = fields.String(required=True)
    payload = fields.Dict(keys=fields.String(), values=fields.Nested(_Entity), load_default=dict)


# Razorpay counts a webhook not answered within 5 s as failed (and delivers it again): what
# bikshop asks Razorpay on the way must be answered within this, all calls together.
RAZORPAY_SECONDS = 3.0


def apply_webhook(raw_body: bytes, *, signature: str | None, event_id: str | None) -> str:
    """Verify, record and apply one webhook delivery; returns its outcome. Commits.

    What it asks Razorpay (the link of a refunded payment it has not seen, the order's other
    links to cancel once it is paid) is answered within ``RAZORPAY_SECONDS`` or not waited
    for: the refund's delivery is then refused with a 503 for Razorpay to send again, and a
    link left open is cancelled by ``reconcile-payments``. Before, each call could take
    ``BIKSHOP_RAZORPAY_TIMEOUT`` (up to 20 s), one per open link.
    """
    with razorpay_client.within(RAZORPAY_SECONDS):
        return _apply_webhook(raw_body, signature=signature, event_id=event_id)


def _apply_webhook(
    raw_body: bytes, *, signature: str | None, event_id: str | None, may_refresh: bool = True
) -> str:
    """:func:`apply_webhook`, once (``may_refresh``: Razorpay may still be asked first).

    Raises ApiError 400 (signature missing or wrong) or 503 (no secret configured, or Razorpay
    must be asked first and cannot be) after storing the delivery. Signed events we cannot use
    still get a 2xx: a 4xx only earns retries, and 24 hours of failures make Razorpay disable
    the webhook.

    A refund can arrive before bikshop learns of the payment it returns (the payment's webhook
    was lost or comes later): bikshop then asks Razorpay for that payment's link, records what
    it says (the payment, as ``reconcile-payments`` would), and applies the delivery again
    (``may_refresh=False``), so the refund is never dropped and the order never left paid.
    """
    # PostgreSQL text holds no NUL character; the stored body is for people, the HMAC was
    # checked over the exact bytes.
    text = raw_body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    received = (event_id or "").strip() or None
    config = current_app.config
    secrets = [config["RAZORPAY_WEBHOOK_SECRET"], config["RAZORPAY_WEBHOOK_SECRET_PREVIOUS"]]
    if not any(secrets):
        _store(text, received, valid=False, outcome="rejected: no webhook secret configured")
        log.error(
            "webhook %s refused: BIKSHOP_RAZORPAY_WEBHOOK_SECRET is not set", _shown(received)
        )
        raise ApiError(503, "Webhooks are not configured on this server", code="not_configured")
    if not razorpay_client.webhook_signature_valid(raw_body, signature, secrets):
        _store(
            text,
            received,
            valid=False,
            outcome="rejected: signature missing or wrong",
            # Razorpay sends both headers with every delivery; a body without them is not its.
            event=_razorpay_shaped(raw_body) if signature and received else None,
        )
        log.warning(
            "webhook %s refused: signature missing or wrong (if it is Razorpay's, "
            "BIKSHOP_RAZORPAY_WEBHOOK_SECRET is not the webhook's secret in its dashboard)",
            _shown(received),
        )
        raise ApiError(
            400,
            "The X-Razorpay-Signature header is missing or does not match the body",
            code="bad_signature",
            fields=[{"field": "X-Razorpay-Signature", "message": "does not match"}],
        )
    try:
        if b"\\u0000" in raw_body:  # a NUL in any string: no database column could hold it
            raise ValueError("a NUL character in the event")
        document = json.loads(raw_body)
        _refuse_lone_surrogates(document, raw_body)
        event = _Event().load(document)
    except (ValueError, ValidationError, RecursionError) as exc:  # RecursionError: deep nesting
        outcome = f"ignored: malformed event ({type(exc).__name__})"
        _store(text, received, valid=True, outcome=outcome)
        log.error("webhook %s signed but malformed: %s", _shown(received), type(exc).__name__)
        return outcome
    delivery = WebhookEvent(
        event_id=dedupe_key(received, raw_body),
        received_event_id=_shown(received),
        event=event["event"][:64],
        signature_valid=True,
        outcome="processing",
        raw_body=text,
    )
    db.session.add(delivery)
    try:
        db.session.flush()  # the claim: a second delivery of this event fails here
    except IntegrityError:
        db.session.rollback()
        outcome = f"duplicate: event {_shown(received)} already received"
        _store(text, received, valid=True, outcome=outcome, event=event["event"])
        return outcome
    try:
        outcome, order = _dispatch(event["event"], event["payload"], may_refresh=may_refresh)
    except _PaymentNotRecorded as unrecorded:
        db.session.rollback()  # gives up the claim: the delivery is applied again below
        try:  # no transaction open while Razorpay is asked
            refresh_link(unrecorded.link_id, unrecorded.razorpay_id, actor=ACTOR)
        except razorpay_client.RazorpayError as exc:
            outcome = f"deferred: {unrecorded.payment_id} not recorded yet and {exc}"
            _store(text, received, valid=True, outcome=outcome, event=event["event"])
            log.warning("webhook %s %s", _shown(received), outcome)
            raise ApiError(
                503,
                "The refunded payment is not recorded yet and Razorpay cannot be asked about "
                "it now: deliver this event again later",
                code="retry_later",
            )
        return _apply_webhook(raw_body, signature=signature, event_id=event_id, may_refresh=False)
    delivery.outcome = outcome[:255]
    delivery.order_id = order.id if order is not None else None
    if order is None:
        # About no order of this shop's (an event bikshop does not use, a link it never made):
        # kept to recognise a redelivery and to show what came, not whose payment it was; no
        # customer's data erasure could ever find it (privacy.strip_razorpay).
        delivery.raw_body = privacy.stripped_body(delivery.raw_body)
    key = delivery.event_id
    db.session.commit()
    log.info("webhook %s %s: %s", key, event["event"], outcome)
    if order is not None:  # after the commit: Razorpay is asked with no transaction open
        privacy.keep_erased(order)
        close_links_if_paid(order, outcome, actor=ACTOR)
    return outcome


# A \uD800-\uDFFF escape, in either case: half of a surrogate pair, or a lone one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(document, raw_body: bytes) -> None:
    """A ``\\ud800`` escape with no partner decodes to a string no database can store (UTF-8
    has no such character): raise UnicodeEncodeError, a ValueError, for the malformed path.
    Looked for only when the body has such an escape at all (an emoji's pair decodes whole)."""
    if _SURROGATE_ESCAPE.search(raw_body):
        json.dumps(document, ensure_ascii=False).encode()


def dedupe_key(received: str | None, raw_body: bytes) -> str:
    """What a delivery claims in ``webhook_events.event_id`` (64 characters at most).

    Razorpay's event id itself when it fits, so the table reads naturally; a longer one by
    its SHA-256, so two ids that share their first 64 characters stay two events (cutting
    them short would make the second a "duplicate"). Without the header (never seen from
    Razorpay) the body itself is the identity. The prefixes keep the three forms apart.
    """
    if received is None:
        return "body-" + hashlib.sha256(raw_body).hexdigest()[:59]
    if len(received) <= 64 and not received.startswith(("body-", "sha256-")):
        return received
    return "sha256-" + hashlib.sha256(received.encode("utf-8", "replace")).hexdigest()[:57]


def prunable(received_before: datetime):
    """The WHERE clause for the deliveries ``flask --app bikshop prune`` may delete: received
    before ``received_before`` and holding no claim (``event_id`` NULL: unsigned and rejected
    ones, duplicates, malformed or deferred ones). None of these is ever read again: a
    redelivery is checked against the claims alone.

    A claimed row is kept however old: it alone makes a redelivery of its event a duplicate
    (Razorpay retries what it saw no 2xx for, for a day, and may deliver an event twice).
    Without it the event would be applied a second time, and not every event is harmless twice
    (a payment.failed, or a refund of a payment bikshop never recorded, would go on the order's
    timeline again). Claims are one or a few per order, and the order page lists them.
    """
    return (WebhookEvent.received_at < received_before) & WebhookEvent.event_id.is_(None)


def claimed(received_before: datetime):
    """The WHERE clause for the claims received before ``received_before``, which stay."""
    return (WebhookEvent.received_at < received_before) & WebhookEvent.event_id.is_not(None)


def _shown(received: str | None) -> str | None:
    """The event id as kept for people (the column holds 64 characters)."""
    if received is None or len(received) <= 64:
        return received
    return received[:63] + "…"


# An unsigned delivery is anybody's: kept for people to look at (a secret that differs from
# Razorpay's shows up as these), but only its beginning, and only the latest UNSIGNED_KEPT of
# them, so a stranger posting megabytes, or posting without end, cannot fill the disk.
UNSIGNED_BODY_KEPT = 4096


UNSIGNED_KEPT = 1000
_TRIM_EVERY = 100  # unsigned deliveries between two trims: up to this many more are kept


def _store(text: str, received: str | None, *, valid: bool, outcome: str, event=None) -> None:
    if not valid and len(text) > UNSIGNED_BODY_KEPT:
        text = f"{text[:UNSIGNED_BODY_KEPT]}… [unsigned: {len(text)} characters, the rest not kept]"
    delivery = WebhookEvent(
        event_id=None,
        received_event_id=_shown(received),
        event=(event or "")[:64] or None,
        signature_valid=valid,
        outcome=outcome[:255],
        raw_body=text,
    )
    db.session.add(delivery)
    db.session.commit()
    if not valid and delivery.id % _TRIM_EVERY == 0:
        _trim_unsigned()


def _trim_unsigned() -> None:
    """Delete the unsigned deliveries older than the latest UNSIGNED_KEPT."""
    unsigned = WebhookEvent.signature_valid.is_(False)
    oldest_kept = db.session.scalar(
        select(WebhookEvent.id)
        .where(unsigned)
        .order_by(WebhookEvent.id.desc())
        .offset(UNSIGNED_KEPT - 1)
        .limit(1)
    )
    if oldest_kept is not None:
        db.session.execute(
            delete(WebhookEvent).where(unsigned, WebhookEvent.id < oldest_kept),
            execution_options={"synchronize_session": False},
        )
        db.session.commit()


def _razorpay_shaped(raw_body: bytes) -> str | None:
    """The event's name when an unsigned body has the shape of Razorpay's events (``entity``
    "event", an ``acc_`` account, an event name): what a wrong secret refuses, unlike a
    scanner's probe. Kept with the refused delivery, for :func:`signature_trouble`."""
    try:
        document = json.loads(raw_body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or document.get("entity") != "event":
        return None
    account, event = document.get("account_id"), document.get("event")
    if not (isinstance(account, str) and _ACCOUNT.fullmatch(account)):
        return None
    # Only a name of Razorpay's form is kept: the body is unauthenticated (a NUL or a lone
    # surrogate in it could not even be stored).
    return event if isinstance(event, str) and _EVENT_NAME.fullmatch(event) else None


_ACCOUNT = re.compile(r"acc_[A-Za-z0-9]{1,32}")
_EVENT_NAME = re.compile(r"[a-z_]{1,30}(?:\.[a-z_]{1,30}){1,2}")


# How far back the dashboard and check-config look for refused deliveries.
TROUBLE_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class SignatureTrouble:
    refused: int  # Razorpay-shaped deliveries refused for their signature since
    since: datetime  # the first of them


def signature_trouble() -> SignatureTrouble | None:
    """Razorpay-shaped deliveries refused for their signature, in the last week, with none
    accepted after them: the mark of a webhook secret that is not Razorpay's (mistyped, or
    the webhook re-created in Razorpay's dashboard with a new one). Payments then reach the
    orders only through reconcile-payments, and Razorpay disables a webhook after a day of
    failures. None when there is none, or no webhook secret is set (every delivery is then
    refused, and check-config says so).

    The evidence is unsigned (anyone can post a body of that shape with both headers), so
    what tells of it says "if they came from Razorpay"."""
    if not current_app.config["RAZORPAY_WEBHOOK_SECRET"]:
        return None
    window = utcnow() - TROUBLE_WINDOW
    last_accepted = db.session.scalar(
        select(func.max(WebhookEvent.received_at)).where(
            WebhookEvent.received_at >= window, WebhookEvent.signature_valid.is_(True)
        )
    )
    refused, first = db.session.execute(
        select(func.count(), func.min(WebhookEvent.received_at)).where(
            WebhookEvent.received_at >= (last_accepted or window),
            WebhookEvent.signature_valid.is_(False),
            WebhookEvent.event.is_not(None),
        )
    ).one()
    return SignatureTrouble(refused, first) if refused else None


class _PaymentNotRecorded(Exception):  # noqa: N818 (a signal, not an error anyone sees)
    """A refund event's payment belongs to a link of a pending order but is not recorded."""

    def __init__(self, link: PaymentLink, payment_id: str):
        super().__init__(payment_id)
        self.link_id, self.razorpay_id, self.payment_id = link.id, link.razorpay_id, payment_id


def _dispatch(name: str, payload: dict, *, may_refresh: bool) -> tuple[str, Order | None]:
    entity = {key: value["entity"] for key, value in payload.items()}
    try:  # a signed event whose entities are not what Razorpay sends is kept, not applied
        if "payment" in entity:
            entity["payment"] = _Payment().load(entity["payment"])
        if name in ("refund.processed", "refund.failed"):
            entity["refund"] = RefundEntity().load(entity.get("refund") or {})
    except ValidationError as exc:
        return f"ignored: malformed {name} entity ({', '.join(sorted(exc.messages))})", None
    if name in LINK_EVENTS:
        return _link_event(entity)
    if name == "payment.failed":
        return _payment_failed(entity.get("payment") or {})
    if name in ("refund.processed", "refund.failed"):
        return _refund_event(name, entity["refund"], entity.get("payment"), may_refresh)
    return f"ignored: {name} is not used", None


def _link_event(entity: dict) -> tuple[str, Order | None]:
    try:
        link_entity = read_link_entity(entity.get("payment_link"))
    except razorpay_client.RazorpayError as exc:
        return f"ignored: {exc}", None
    link = db.session.scalars(
        select(PaymentLink).where(PaymentLink.razorpay_id == link_entity["id"])
    ).one_or_none()
    if link is None:
        return f"ignored: unknown payment link {link_entity['id']}", None
    outcome = apply_link_state(link, link_entity, actor=ACTOR, payment=entity.get("payment"))
    return outcome, db.session.get(Order, link.order_id)


def _payment_failed(payment: dict) -> tuple[str, Order | None]:
    link = _link_of_payment(payment)
    if link is None:
        return "ignored: payment.failed for an unknown link", None
    order = db.session.get(Order, link.order_id)
    reason = payment.get("error_description") or payment.get("error_reason") or "no reason given"
    record(
        order,
        "payment_failed",
        ACTOR,
        f"A payment attempt failed ({payment.get('method') or 'unknown method'}): {reason}",
        {"razorpayPaymentId": payment.get("id"), "paymentLink": link.razorpay_id},
    )
    return "payment failure recorded", order


def _link_of_payment(payment: dict) -> PaymentLink | None:
    order_id = payment.get("order_id")
    if isinstance(order_id, str) and order_id:
        link = db.session.scalars(
            select(PaymentLink).where(PaymentLink.razorpay_order_id == order_id)
        ).first()
        if link is not None:
            return link
    # Link payments are described as "#<link id without plink_>" (seen, not documented).
    description = payment.get("description")
    if isinstance(description, str) and description.startswith("#"):
        return db.session.scalars(
            select(PaymentLink).where(PaymentLink.razorpay_id == "plink_" + description[1:])
        ).one_or_none()
    return None


def _refund_event(
    name: str, entity: dict, payment_entity: dict | None, may_refresh: bool
) -> tuple[str, Order | None]:
    refund_id, payment_id, minor = entity["id"], entity["payment_id"], entity["amount"]
    payment = db.session.scalars(
        select(Payment).where(Payment.razorpay_payment_id == payment_id)
    ).one_or_none()
    if payment is None:
        return _refund_of_unrecorded_payment(name, entity, payment_entity, may_refresh)
    order = db.session.get(Order, payment.order_id)
    if not razorpay_takes(payment.currency):
        return f"ignored: refund of a payment in {payment.currency}", order
    if not minor_units_fit(minor, payment.currency):  # signed, yet more than any order holds
        return f"ignored: refund {refund_id} amount {minor} is out of range", order
    amount = from_minor_units(minor, payment.currency)
    if amount > payment.amount:  # Razorpay refunds at most what it captured
        return f"ignored: refund {refund_id} of {amount} exceeds payment {payment_id}", order
    row = row_for(payment, entity) or _dashboard_refund(payment, entity, amount)
    if row.razorpay_refund_id is None:
        row.razorpay_refund_id, row.raw = refund_id, entity
        db.session.flush()
    if name == "refund.failed":
        return fail_refund(row, actor=ACTOR), order
    return confirm_refund(row, actor=ACTOR), order


def _dashboard_refund(payment: Payment, entity: dict, amount) -> Refund:
    """The row for a refund made in Razorpay's dashboard, recorded so that it counts once. Two
    deliveries of it at once (different event ids) both find no row: one inserts it, and the
    other's insert fails on the unique refund id and takes the row the first one stored."""
    row = Refund(
        order_id=payment.order_id,
        payment_id=payment.id,
        amount=amount,
        status="pending",
        razorpay_refund_id=entity["id"],
        raw=entity,
    )
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        return row_for(payment, entity)
    return row


def _refund_of_unrecorded_payment(
    name: str, entity: dict, payment_entity: dict | None, may_refresh: bool
) -> tuple[str, Order | None]:
    """A refund of a payment bikshop has no row for: not ours (ignored), not recorded yet (the
    link is asked about first: see :func:`apply_webhook`), or one bikshop never records as
    the order's payment (a mismatched or extra one): that goes on the order's timeline."""
    refund_id, payment_id = entity["id"], entity["payment_id"]
    link = None
    if payment_entity and payment_entity.get("id") == payment_id:
        link = _link_of_payment(payment_entity)
    if link is None:
        return f"ignored: refund for unknown payment {payment_id}", None
    order = db.session.get(Order, link.order_id)
    # The payment's own webhook may be committing its row this moment (PostgreSQL reads each
    # statement afresh): look again once the order is held, so a refund of the payment that
    # just paid the order is applied to it, not filed as an extra payment's.
    lock_order(order)
    if db.session.scalars(
        select(Payment.id).where(Payment.razorpay_payment_id == payment_id)
    ).first():
        return _refund_event(name, entity, payment_entity, may_refresh)
    if may_refresh and order.payment_status == "pending":
        raise _PaymentNotRecorded(link, payment_id)
    currency = payment_entity.get("currency") or link.currency
    what = "failed" if name == "refund.failed" else "refunded"
    amount = (
        f"{format_plain(from_minor_units(entity['amount'], currency))} {currency}"
        if razorpay_takes(currency) and minor_units_fit(entity["amount"], currency)
        else f"{entity['amount']} (minor units)"
    )
    record(
        order,
        "refund_unrecorded_payment",
        ACTOR,
        f"Razorpay {'could not make' if what == 'failed' else 'made'} a refund of {amount} "
        f"({refund_id}) of payment {payment_id} on "
        f"{link.razorpay_id}, which is not this order's recorded payment (a mismatched or "
        "extra payment): nothing about the order changes",
        {"razorpayRefundId": refund_id, "razorpayPaymentId": payment_id, "status": what},
    )
    outcome = f"recorded: refund {refund_id} of unrecorded payment {payment_id}"
    if what == "refunded" and release_refunded_link(link, payment_entity, actor=ACTOR):
        outcome += "; nothing is held for the order any more"
    return outcome, order
