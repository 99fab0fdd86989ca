"""The customer's door: the invoice page, its PDF (and, from the payments issue, the Pay button)."""

from flask import Blueprint

bp = Blueprint("invoice", __name__, url_prefix="/invoice")

from bikshop.invoice import formatting, views  # noqa: E402, F401  (routes and filters)
