"""The payments door's one HTML-side input: the query Razorpay adds to the redirect back."""

from __future__ import annotations

from wtforms import Form, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp

_RAZORPAY_ID = Regexp(r"^[A-Za-z0-9_]+$", message="not a Razorpay id")


class RedirectForm(Form):
    """The query Razorpay appends to ``callback_url`` after a payment."""

    # Razorpay's ids are letters, digits and "_" (pay_29QQoUBi66xm2f, plink_ExjpAUN3gVHrPJ).
    razorpay_payment_id = StringField(validators=[DataRequired(), Length(max=64), _RAZORPAY_ID])
    razorpay_payment_link_id = StringField(
        validators=[DataRequired(), Length(max=64), _RAZORPAY_ID]
    )
    razorpay_payment_link_reference_id = StringField(validators=[Optional(), Length(max=40)])
    razorpay_payment_link_status = StringField(validators=[DataRequired(), Length(max=24)])
    razorpay_signature = StringField(
        validators=[DataRequired(), Regexp(r"^[0-9a-fA-F]{64}$", message="not a signature")]
    )
