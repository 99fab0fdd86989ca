"""POST /invoice/<token>/pay, GET /invoice/<token>/paid and POST /webhooks/razorpay."""

from __future__ import annotations

from flask import jsonify, redirect, render_template, request, url_for

from bikshop.errors import ApiError
from bikshop.invoice.access import order_for_token
from bikshop.invoice.rendering import invoice_page, protect
from bikshop.payments import bp
from bikshop.payments.forms import RedirectForm
from bikshop.services import payments, webhooks

PAID = "Paid. Thank you! Your payment is confirmed."
CONFIRMING = (
    "Payment received, confirming with Razorpay. This usually takes a few seconds: "
    "reload this page to see it marked paid."
)


@bp.post("/invoice/<token>/pay")
def pay(token: str):
    """Send the customer to a Razorpay payment link for the order (made, or reused).

    The form has no fields and no CSRF token: the 192-bit token in the URL already is one (a
    stranger cannot aim a form at a URL they cannot know), and a session-bound token would go
    stale in a page the browser revalidates by ETag.
    """
    order = order_for_token(token)
    if not payments.can_pay_online(order):
        return redirect(url_for("invoice.page", token=token), 303)
    try:
        link = payments.create_or_reuse_link(order)
    except payments.GatewayFailure as failure:
        page = render_template("payments/retry.html", order=order, retry=failure.retry)
        return page, 503, {"Retry-After": "30"}
    except ApiError as refused:
        if refused.code != 409:
            raise
        return redirect(url_for("invoice.page", token=token), 303)  # paid meanwhile
    if not payments.can_pay_online(order):  # the link we adopted was already paid
        return redirect(url_for("invoice.page", token=token), 303)
    return redirect(link.short_url, 303)


@bp.get("/invoice/<token>/paid")
def paid(token: str):
    """Where Razorpay sends the customer after paying: confirm with Razorpay, show the invoice."""
    order = order_for_token(token)
    form = RedirectForm(request.args)
    if not form.validate():
        raise ApiError(
            400,
            "This payment confirmation link is incomplete. Your invoice shows the current state.",
        )
    payments.confirm_redirect(order, form.data)
    return invoice_page(order, notice=PAID if order.payment_status != "pending" else CONFIRMING)


@bp.post("/webhooks/razorpay")
def razorpay_webhook():
    """Razorpay's signed event: verified over the raw body, stored, applied once."""
    outcome = webhooks.apply_webhook(
        request.get_data(),
        signature=request.headers.get("X-Razorpay-Signature"),
        event_id=request.headers.get("X-Razorpay-Event-Id"),
    )
    return jsonify(status="ok", outcome=outcome)


@bp.after_request
def private_pages(response):
    """Pages under /invoice/ carry the invoice's privacy headers (the token is in the URL)."""
    return protect(response) if request.path.startswith("/invoice/") else response
