"""The one check that turns an invoice token into an order, used by every /invoice/<token> route."""

from __future__ import annotations

import re

from flask import abort, g

from bikshop.models import Order
from bikshop.services.orders import find_by_invoice_token

# secrets.token_urlsafe(24): 32 URL-safe characters. Anything else cannot be a token.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")


def order_for_token(token: str) -> Order:
    """The order behind ``token``, or a 404 that reveals nothing (malformed or unknown alike)."""
    order = find_by_invoice_token(token) if _TOKEN.match(token or "") else None
    if order is None:
        abort(404, description="This invoice link is not valid. Ask the shop for a new one.")
    g.invoice_token = token  # an error page from here on can link back to the invoice
    return order
