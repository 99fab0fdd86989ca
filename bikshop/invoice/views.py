"""Routes under /invoice/<token>: every one opens the order through ``order_for_token``."""

from __future__ import annotations

from bikshop.extensions import compress
from bikshop.invoice import bp
from bikshop.invoice.access import order_for_token
from bikshop.invoice.rendering import invoice_page, invoice_pdf, protect, stylesheet_url


# strict_slashes=False: a link a chat app or a person passes on with a "/" added still opens.
@bp.get("/<token>", strict_slashes=False)
@compress.compressed()
def page(token: str):
    """The customer's invoice page."""
    return invoice_page(order_for_token(token))


@bp.get("/<token>.pdf")
def pdf(token: str):
    """The same invoice as an A4 PDF download."""
    return invoice_pdf(order_for_token(token))


# Error pages from these routes (the 404 for a bad token) get the same privacy headers.
bp.after_request(protect)


@bp.app_context_processor
def public_page_helpers() -> dict:
    return {"stylesheet_url": stylesheet_url}
