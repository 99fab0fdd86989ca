"""The two HTML-side inputs of the payments door: the Pay button and Razorpay's redirect query."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import Form, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp


class PayForm(FlaskForm):
    """The Pay button: no fields, only the invoice token in its URL.

    No CSRF token: the 192-bit token in the URL already is one (a stranger cannot aim a form
    at a URL they cannot know), and a session-bound token would go stale in a cached page.
    """

    class Meta:
        csrf = False


class RedirectForm(Form):
    """The query Razorpay appends to ``callback_url`` after a payment."""

    razorpay_payment_id = StringField(validators=[DataRequired(), Length(max=64)])
    razorpay_payment_link_id = StringField(validators=[DataRequired(), Length(max=64)])
    razorpay_payment_link_reference_id = StringField(validators=[Optional(), Length(max=40)])
    razorpay_payment_link_status = StringField(validators=[DataRequired(), Length(max=24)])
    razorpay_signature = StringField(
        validators=[DataRequired(), Regexp(r"^[0-9a-fA-F]{64}$", message="not a signature")]
    )
