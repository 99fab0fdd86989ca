"""The one check that turns an invoice token into an order, used by every /invoice/<token> route."""

from __future__ import annotations

import re

from flask import abort, g
from sqlalchemy.exc import SQLAlchemyError

from bikshop.extensions import db
from bikshop.models import Order
from bikshop.services.orders import find_by_invoice_token

# secrets.token_urlsafe(24): 32 URL-safe characters. Anything else cannot be a token.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")


def order_for_token(token: str) -> Order:
    """The order behind ``token``, or a 404 that reveals nothing (malformed or unknown alike)."""
    order = _lookup(token)
    if order is None:
        abort(404, description="This invoice link is not valid. Ask the shop for a new one.")
    g.invoice_token = token  # an error page from here on can link back to the invoice
    return order


def token_is_known(token: str | None) -> bool:
    """Whether ``token`` opens an order: the rate limits ask before the view runs, so only
    unknown tokens count as guesses. The view's ``order_for_token`` reuses the lookup."""
    return _lookup(token) is not None


def _lookup(token: str | None) -> Order | None:
    found = g.setdefault("invoice_orders", {})  # per request: one query however often asked
    if token not in found:
        try:
            found[token] = find_by_invoice_token(token) if _TOKEN.match(token or "") else None
        except SQLAlchemyError:
            # The rate limits ask first, and flask-limiter swallows what they raise: the view
            # then asks again, and must find a session it can use (a new connection, or the
            # database's own error, a 503), not one still failed from this ask (a 500).
            db.session.rollback()
            raise
    return found[token]
