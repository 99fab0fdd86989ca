"""POST /invoice/<token>/pay, GET /invoice/<token>/paid and POST /webhooks/razorpay.

Their answers get the invoice's privacy headers from ``bikshop/invoice/views.py: private_pages``.
"""

from __future__ import annotations

from flask import jsonify, redirect, render_template, request, url_for

from bikshop.errors import ApiError
from bikshop.extensions import compress
from bikshop.invoice.access import order_for_token
from bikshop.invoice.rendering import PAYMENT_NOTICES, invoice_page
from bikshop.models.orders import PAID_STATUSES
from bikshop.payments import bp
from bikshop.payments.forms import RedirectForm
from bikshop.services import payments, webhooks
from bikshop.services.invoices import nothing_to_pay, store


@bp.post("/invoice/<token>/pay")
def pay(token: str):
    """Send the customer to a Razorpay payment link for the order (made, or reused).

    The form has no fields and no CSRF token: the 192-bit token in the URL already is one (a
    stranger cannot aim a form at a URL they cannot know), and a session-bound token would go
    stale in a page the browser revalidates by ETag.
    """
    order = order_for_token(token)
    if nothing_to_pay(order):  # a ₹0 order: a Pay form from an old page finds nothing owed
        return redirect(url_for("invoice.page", token=token), 303)
    problem = payments.online_payment_problem(order)
    if problem:  # e.g. a currency Razorpay does not take: no link, and a page that says why
        page = render_template(
            "payments/unavailable.html", order=order, problem=problem, store=store()
        )
        return page, 409
    if not payments.can_pay_online(order):
        return _back_to_invoice(order)
    try:
        link = payments.create_or_reuse_link(order)
    except payments.GatewayFailure as failure:
        page = render_template(
            "payments/retry.html", order=order, retry=failure.retry, store=store()
        )
        if failure.retry:  # Razorpay down or slow: worth another tap in a moment
            return page, 503, {"Retry-After": "30"}
        return page, 502  # refused: the shop has it on the order's timeline
    except ApiError as refused:
        if refused.code != 409:
            raise
        return _back_to_invoice(order)  # paid meanwhile
    if not payments.can_pay_online(order):  # the link we adopted was already paid
        return _back_to_invoice(order)
    return redirect(link.short_url, 303)


def _back_to_invoice(order):
    """Back to the invoice, with a word when the order is paid: a Pay button from a tab left
    open finds it paid, and the customer is told nothing was charged again; or cancelled
    unpaid, and the customer is told nothing is owed."""
    paid = "already" if order.payment_status in PAID_STATUSES else None  # None: left out
    if order.status == "CANCELLED" and order.payment_status == "pending":
        paid = "cancelled"
    return redirect(url_for("invoice.page", token=order.invoice_token, paid=paid), 303)


@bp.get("/invoice/<token>/pay")
def pay_address(token: str):
    """The Pay address opened, not posted (the "couldn't start the payment" page reloaded, or its
    address shared): the invoice, with its Pay button, rather than a bare 405."""
    order_for_token(token)
    return redirect(url_for("invoice.page", token=token), 303)


@bp.get("/invoice/<token>/paid")
@compress.compressed()  # the invoice page, as at its own address: 4.4 KB is 1.5 KB compressed
def paid(token: str):
    """Where Razorpay sends the customer after paying: confirm with Razorpay, show the invoice."""
    order = order_for_token(token)
    form = RedirectForm(request.args)
    if not form.validate():
        raise ApiError(
            400,
            "This payment confirmation link is incomplete. Your invoice shows the current state.",
        )
    return invoice_page(order, notice=PAYMENT_NOTICES[payments.confirm_redirect(order, form.data)])


@bp.post("/webhooks/razorpay")
def razorpay_webhook():
    """Razorpay's signed event: verified over the raw body, stored, applied once."""
    outcome = webhooks.apply_webhook(
        request.get_data(),
        signature=request.headers.get("X-Razorpay-Signature"),
        event_id=request.headers.get("X-Razorpay-Event-Id"),
    )
    return jsonify(status="ok", outcome=outcome)
