"""The payments door's one HTML-side input: the query Razorpay adds to the redirect back."""

from __future__ import annotations

from wtforms import Form, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp


class RedirectForm(Form):
    """The query Razorpay appends to ``callback_url`` after a payment."""

    razorpay_payment_id = StringField(validators=[DataRequired(), Length(max=64)])
    razorpay_payment_link_id = StringField(validators=[DataRequired(), Length(max=64)])
    razorpay_payment_link_reference_id = StringField(validators=[Optional(), Length(max=40)])
    razorpay_payment_link_status = StringField(validators=[DataRequired(), Length(max=24)])
    razorpay_signature = StringField(
        validators=[DataRequired(), Regexp(r"^[0-9a-fA-F]{64}$", message="not a signature")]
    )
