"""The payments door: the Pay button's target, Razorpay's redirect back, and its webhook."""

from flask import Blueprint

bp = Blueprint("payments", __name__)

from bikshop.payments import views  # noqa: E402,F401  (registers the routes)
