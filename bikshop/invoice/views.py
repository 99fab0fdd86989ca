"""Routes under /invoice/<token>: every one opens the order through ``order_for_token``."""

from __future__ import annotations

from flask import g, redirect, request, url_for

from bikshop.extensions import compress
from bikshop.invoice import bp
from bikshop.invoice.access import order_for_token, token_is_known
from bikshop.invoice.rendering import (
    PAYMENT_NOTICES,
    invoice_page,
    invoice_pdf,
    protect,
    stylesheet_url,
)
from bikshop.models.orders import PAID_STATUSES
from bikshop.services.payments import unsettled_links


# strict_slashes=False: a link a chat app or a person passes on with a "/" added still opens.
@bp.get("/<token>", strict_slashes=False)
@compress.compressed()
def page(token: str):
    """The customer's invoice page; after a Pay button found the order paid (``?paid=already``),
    with a word that nothing more was charged."""
    whole = token.rstrip(_AROUND_A_LINK)
    if whole != token:
        # The link pasted with the sentence's full stop or bracket after it: no token ends so.
        if token_is_known(whole):
            return redirect(url_for("invoice.page", token=whole), 301)
        if whole.endswith(".pdf") and token_is_known(whole.removesuffix(".pdf")):
            return redirect(url_for("invoice.pdf", token=whole.removesuffix(".pdf")), 301)
    order = order_for_token(token)
    if request.args.get("paid") == "already" and order.payment_status in PAID_STATUSES:
        refunded = order.payment_status == "refunded"
        return invoice_page(
            order, notice=PAYMENT_NOTICES["already_refunded" if refunded else "already_paid"]
        )
    if (
        request.args.get("paid") == "cancelled"
        and order.status == "CANCELLED"
        and order.payment_status == "pending"
        and not unsettled_links(order)  # money Razorpay holds: "nothing was charged" is false
    ):
        return invoice_page(order, notice=PAYMENT_NOTICES["already_cancelled"])
    return invoice_page(order)


# What a sentence puts right after a link, and a token never holds.
_AROUND_A_LINK = ".,;:!?)]}>'\"»”’…"


@bp.get("/<token>.pdf")
def pdf(token: str):
    """The same invoice as an A4 PDF download."""
    return invoice_pdf(order_for_token(token))


@bp.after_app_request
def private_pages(response):
    """Every answer under /invoice/ carries the invoice's privacy headers (the token is in the
    URL): the payments door's routes too, and error pages of any status, even where no route
    matched (a 405, a 404 for /invoice/<token>/nowhere), which no blueprint's hook would see."""
    path = request._get_current_object().path  # not request.path: a costlier proxy lookup
    return protect(response) if path.startswith("/invoice/") else response


@bp.app_context_processor
def public_page_helpers() -> dict:
    # An error page after ``order_for_token`` opened an order links back to its invoice.
    token = g.get("invoice_token")
    invoice_url = url_for("invoice.page", token=token) if token else None
    return {"stylesheet_url": stylesheet_url, "invoice_url": invoice_url}
