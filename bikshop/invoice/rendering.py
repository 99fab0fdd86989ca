"""Invoice responses: the page and the PDF with their validators and privacy headers.

The payments door renders the same page after a payment redirect through ``invoice_page``.
"""

from __future__ import annotations

import hashlib
import os
import re
from urllib.parse import urlsplit

from flask import Response, current_app, make_response, render_template, request, url_for
from flask.globals import request_ctx

from bikshop import pdf, razorpay_client
from bikshop.extensions import db
from bikshop.models.orders import PAID_STATUSES
from bikshop.services.invoices import STATUS_LABELS, STORE_SETTINGS, invoice_for, issue_tax_invoice
from bikshop.services.payments import (
    can_pay_online,
    payment_confirming,
    payment_in_review,
    payment_of,
    unsettled_links,
)
from bikshop.services.refunds import pending_refunds
from bikshop.static_files import content_version, static_url

# What the page says about a payment in flight: after Razorpay's redirect back (the payments
# door picks one), and "confirming" also on the plain page until Razorpay confirms it.
PAYMENT_NOTICES = {
    "paid": "Paid. Thank you! Your payment is confirmed.",
    "paid_cancelled": (
        "Payment received, but this order was cancelled: the shop will refund it to you."
    ),
    "refunded": "This order was paid, and the payment has since been refunded to you.",
    "extra": (
        "This order was already paid, so this payment is one too many: the shop will refund it "
        "to you."
    ),
    "confirming": (
        "Payment received, confirming with Razorpay: please do not pay again. This usually "
        "takes a few seconds, longer when Razorpay is slow: reload this page to see it marked "
        "paid."
    ),
    # A Pay button from a page left open, pressed after the order was paid.
    "already_paid": "This order is already paid: nothing more was charged.",
    "already_refunded": (
        "This order was paid and the payment refunded to you: nothing more was charged."
    ),
    # ... or after it was cancelled, unpaid.
    "already_cancelled": "This order was cancelled: nothing was charged, and nothing is owed.",
    # Razorpay holds a payment that does not settle the order (e.g. a different amount).
    "checking": (
        "Payment received. The shop is checking it against your order and will be in touch; "
        "please do not pay again."
    ),
}

# Where a Pay button's form may lead: bikshop, then Razorpay's hosted payment page.
# Pay's form goes to the link's rzp.io short URL, which Razorpay redirects to its own page;
# browsers check form-action at every hop, and `*.razorpay.com` does not match razorpay.com.
PAYMENT_FORM_HOSTS = ("https://rzp.io", "https://razorpay.com", "https://*.razorpay.com")
# bikshop/pdf.py for WeasyPrint's options (tagging, say): a PDF cached before a change to them
# is rendered again.
_ASSETS = (
    "templates/invoice",
    "templates/base_public.html",
    "static/invoice.css",
    "static/fonts",
    "bikshop/pdf.py",
)
_VERSION_KEY = "bikshop.invoice_render_version"


def render_version() -> str:
    """A hash of everything besides the order that shapes an invoice: templates, CSS, fonts,
    the PDF renderer, store settings, the Razorpay keys (or none). Part of every ETag and PDF
    cache key."""
    version = current_app.extensions.get(_VERSION_KEY)
    if version is None:
        digest = hashlib.sha256()
        root = os.path.dirname(current_app.root_path)
        for asset in _ASSETS:
            for path in _files(os.path.join(root, asset)):
                digest.update(os.path.relpath(path, root).encode())
                with open(path, "rb") as file:
                    digest.update(file.read())
        config = current_app.config
        for key in STORE_SETTINGS:
            digest.update(f"{key}={config[key]!r};".encode())
        online = razorpay_client.keys_fingerprint() if config["RAZORPAY_KEY_ID"] else ""
        digest.update(f"online={online}".encode())  # new keys: Pay refused under the old returns
        version = digest.hexdigest()[:16]
        current_app.extensions[_VERSION_KEY] = version
    return version


def _files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    return sorted(
        os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names
    )


def stylesheet_url() -> str:
    """The invoice stylesheet's URL, versioned by its content (``static_files``) so a deploy
    never pairs new HTML with old CSS."""
    if request_ctx.url_adapter is None:
        # The request's Host is not in BIKSHOP_TRUSTED_HOSTS: Flask builds no URLs for it, and
        # the 400 page saying so still needs its stylesheet.
        version = content_version("invoice.css")
        return f"{request.script_root}{current_app.static_url_path}/invoice.css?v={version}"
    return static_url("invoice.css")


def content_security_policy() -> str:
    """Nothing but bikshop's own stylesheet, https images, and forms to bikshop or Razorpay.

    data: images are the page's empty icon (``<link rel="icon" href="data:,">``), which keeps
    the browser from asking for /favicon.ico on every load."""
    form_action = ["'self'"]
    config = current_app.config
    if config["RAZORPAY_KEY_ID"]:
        form_action += PAYMENT_FORM_HOSTS
        api = urlsplit(config["RAZORPAY_API_URL"])
        if api.hostname and not api.hostname.endswith("razorpay.com"):
            form_action.append(f"{api.scheme}://{api.netloc}")  # a stand-in Razorpay in tests
    return (
        "default-src 'none'; style-src 'self'; img-src 'self' data: https:; "
        f"form-action {' '.join(form_action)}; frame-ancestors 'none'; base-uri 'none'"
    )


def protect(response: Response) -> Response:
    """Headers every response under /invoice/ carries: private, unindexed, no referrer."""
    headers = response.headers
    headers["Cache-Control"] = "private, no-cache"  # revalidate, so a new status shows at once
    headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    headers["X-Robots-Tag"] = "noindex, nofollow"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Content-Security-Policy"] = content_security_policy()
    return response


def _etag(kind: str, order) -> str:
    return f"{kind}-{_drawn_from(order)}-{render_version()}"


def _drawn_from(order) -> str:
    """Which state of ``order`` a page or PDF shows: its version, and when it last changed.
    The version alone repeats after a restore from a backup (the next change after it brings
    the restored version back, with another state), and then a browser's copy, or the PDF
    cache's, of the state before the restore would be served as current; the time of that
    change does not repeat."""
    changed = order.updated_at
    stamp = int(changed.timestamp() * 1_000_000) if changed is not None else 0
    return f"{order.version}.{stamp:x}"


def _not_modified(etag: str) -> Response | None:
    if request.if_none_match.contains_weak(etag):
        response = Response(status=304)
        response.set_etag(etag, weak=True)
        return protect(response)
    return None


# What fetches a link to draw its preview in a chat (WhatsApp's own is "WhatsApp/2.23.20.0 A";
# WhatsApp opens a tapped link in the phone's browser) or to index it: not the customer.
_NOT_THE_CUSTOMER = re.compile(
    r"^WhatsApp/|facebookexternalhit|Facebot|TelegramBot|Slackbot|Twitterbot|Discordbot|"
    r"LinkedInBot|SkypeUriPreview|redditbot|Googlebot|bingbot|Applebot|Iframely|embedly",
    re.IGNORECASE,
)


def _first_view(order) -> None:
    """The customer's first look issues the tax invoice (``issue_tax_invoice``), before the
    validators are drawn from the order (drawn before, the first answer's ETag and PDF cache
    key named the state before numbering: a second render, and no 304). A HEAD request or a
    link preview issues nothing: a chat app drawing the link's preview would date and number
    the invoice, and put a bot's look on the timeline as the customer's."""
    current = request._get_current_object()
    if current.method == "HEAD" or _NOT_THE_CUSTOMER.search(current.user_agent.string or ""):
        return
    issue_tax_invoice(order)


def invoice_page(order, *, notice: str | None = None) -> Response:
    """The invoice page for ``order``; a 304 when the browser has this version already.

    ``notice`` (e.g. "Payment received, confirming") makes a one-off page without a validator.
    """
    _first_view(order)
    etag = None if notice else _etag("page", order)
    if etag and (unchanged := _not_modified(etag)):
        return unchanged
    response = make_response(_render(order, for_pdf=False, notice=notice))
    if etag:
        response.set_etag(etag, weak=True)
    return protect(response)


def invoice_pdf(order) -> Response:
    """The invoice as an A4 PDF, rendered once per state of the order (``_drawn_from``) and
    then served from disk."""
    _first_view(order)
    etag = _etag("pdf", order)
    if unchanged := _not_modified(etag):
        return unchanged
    static_prefix = url_for("static", filename="")
    fetcher = pdf.StaticFilesOnly(current_app.static_folder, static_prefix)
    body = pdf.cached(
        current_app.config["PDF_CACHE_DIR"],  # config.py fills in <instance>/invoice-pdfs
        order.invoice_token,
        f"{_drawn_from(order)}-{render_version()}",
        lambda: _render_pdf(order, fetcher),
    )
    response = Response(body, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="invoice-{order.number}.pdf"'
    response.set_etag(etag, weak=True)
    return protect(response)


def _render_pdf(order, fetcher) -> bytes:
    """The PDF of ``order``. The database is done with once the HTML is drawn: WeasyPrint's
    second or more of layout then holds no pooled connection, nor a transaction open on the
    server, and a connection the database drops meanwhile costs nothing (it failed the
    request's end, after the PDF was made: a bare 500 in the operations probe)."""
    html = _render(order, for_pdf=True)
    db.session.close()
    return pdf.render(html, fetcher)


def _render(order, *, for_pdf: bool, notice: str | None = None) -> str:
    paid = order.payment_status in PAID_STATUSES
    if notice is None and not for_pdf and payment_confirming(order):
        notice = PAYMENT_NOTICES["confirming"]  # like the redirect's page: no Pay button
    invoice = invoice_for(order)
    return render_template(
        "invoice/page.html",
        invoice=invoice,
        # The badge agrees with the notice: not "Payment pending" beside "Payment received".
        confirming=notice == PAYMENT_NOTICES["confirming"] and invoice.status == "pending",
        order=order,
        can_pay=can_pay_online(order),
        in_review=not for_pdf and payment_in_review(order),
        # Money received beyond a settled order (paid twice, or after cash), or for one
        # cancelled: held to refund. (A pending order's is "in review" instead.)
        extra=[]
        if for_pdf or (order.payment_status == "pending" and order.status != "CANCELLED")
        else unsettled_links(order),
        # When and how it was paid, for the receipt line (nothing was paid for a ₹0 order).
        paid=paid and order.total > 0,
        payment=payment_of(order) if paid and order.total > 0 else None,
        # Asked of Razorpay, not yet confirmed: the customer is told it is on its way. Only a
        # paid order with money left to send back has one: no query for the others.
        refund_on_its_way=(
            pending_refunds(order) if paid and order.amount_refunded < order.total else 0
        ),
        labels=STATUS_LABELS,
        for_pdf=for_pdf,
        notice=notice,
    )
