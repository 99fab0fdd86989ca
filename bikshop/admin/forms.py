"""The dashboard's forms (Flask-WTF): each carries a CSRF token unless it only reads."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    DecimalField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import (
    URL,
    DataRequired,
    Length,
    Optional,
    StopValidation,
    ValidationError,
)

from bikshop.admin.display import label
from bikshop.links import percent_encoded
from bikshop.models import FULFILLMENT_STATUSES, ORDER_STATUSES, PAYMENT_STATUSES
from bikshop.models.types import LARGEST_ID
from bikshop.services.search import (
    FIRST_DAY,
    FULFILLMENT_GROUPS,
    LAST_DAY,
    PAYMENT_GROUPS,
    STATUS_GROUPS,
)


def csrf_failed(form: FlaskForm) -> bool:
    """The form was refused for its CSRF token (missing, wrong or from another session)."""
    return "csrf_token" in form.errors


class LoginForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    next = HiddenField()


class LogoutForm(FlaskForm):
    pass


def _choices(values, groups=()) -> list[SelectChoice]:
    labels = {
        "open": "Open (ordered or in progress)",
        "not_cancelled": "Not cancelled",
        "unshipped": "Not yet fulfilled",
        "not_refunded": "Not refunded in full",
    }
    return [SelectChoice("", "Any")] + [
        SelectChoice(v, labels.get(v, label(v))) for v in (*values, *groups)
    ]


def _searchable_day(form, field):
    if field.data and not FIRST_DAY <= field.data <= LAST_DAY:
        raise ValidationError(
            f"Enter a date between {FIRST_DAY:%-d %b %Y} and {LAST_DAY:%-d %b %Y}."
        )


class _PageCursor(IntegerField):
    """Where the Older and Newer links start a page: an order id the links themselves wrote.
    Anything else is an edited or cut-off link, refused with one reason under one name the
    owner can place ("Page"), not WTForms' two ("Not a valid integer value", "Number must be
    between") under the parameter's name."""

    def __init__(self, *, lowest: int, **bound):
        super().__init__("Page", validators=[Optional()], **bound)
        self.lowest = lowest

    def pre_validate(self, form):
        if not (self.raw_data and self.raw_data[0].strip()):
            return  # none given: the newest orders (Optional ends validation here)
        if self.process_errors or not self.lowest <= self.data <= LARGEST_ID:
            self.errors = []  # WTForms has already copied in its own parsing error
            raise StopValidation("this link is not a page of the order list.")


class FilterForm(FlaskForm):
    """The list's search and filters, read from the query string (GET, nothing changes)."""

    class Meta:
        csrf = False

    q = StringField("Search", validators=[Optional(), Length(max=200)])
    status = SelectField("Status", choices=_choices(ORDER_STATUSES, STATUS_GROUPS), default="")
    payment = SelectField("Payment", choices=_choices(PAYMENT_STATUSES, PAYMENT_GROUPS), default="")
    fulfillment = SelectField(
        "Fulfilment", choices=_choices(FULFILLMENT_STATUSES, FULFILLMENT_GROUPS), default=""
    )
    first_day, last_day = FIRST_DAY, LAST_DAY  # the date inputs' min and max
    date_from = DateField("From", validators=[Optional(), _searchable_day])
    date_to = DateField("To", validators=[Optional(), _searchable_day])
    before = _PageCursor(lowest=1)
    after = _PageCursor(lowest=0)

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The end date is before the start date.")


class StatusForm(FlaskForm):
    status = SelectField("Status", choices=[SelectChoice(s, label(s)) for s in ORDER_STATUSES])


class CancelForm(FlaskForm):
    pass


class MarkPaidForm(FlaskForm):
    pass


def _one_reason(*validators):
    """Run ``validators`` in turn and stop at the first refusal: the owner reads one reason,
    not 'too long; not a valid URL' for the same link."""

    def check(form, field):
        for validator in validators:
            try:
                validator(form, field)
            except ValidationError as refused:
                raise StopValidation(str(refused)) from None

    return check


def _http_only(form, field):
    if field.data and not field.data.lower().startswith(("https://", "http://")):
        raise ValidationError("it must start with https:// or http://.")


class FulfillmentForm(FlaskForm):
    fulfillment = SelectField(
        "Fulfilment", choices=[SelectChoice(s, label(s)) for s in FULFILLMENT_STATUSES]
    )
    tracking_url = StringField(
        "Tracking link",
        validators=[
            Optional(),
            _one_reason(
                Length(
                    max=2048,
                    message="it is longer than 2048 characters once written as a link "
                    "(a space, quote or accented letter takes 3 to 12).",
                ),
                _http_only,
                # A host with a dot (dtdc.in, not "x"): a name no customer's phone can reach
                # is refused, not shared with the customer by Bik.
                URL(message="it is not a web address a customer can open."),
            ),
        ],
        # Shared with the customer as text by Bik: a space or quote would cut the link short.
        filters=[lambda value: _tracking_link(value) if isinstance(value, str) else value],
    )
    # orders.fulfillment_seen as the page showed it: a page left open does not undo a newer
    # change made in another tab.
    seen = HiddenField()


# A courier's link pasted without its scheme, as couriers print them: dtdc.in/track?cn=…
_BARE_HOST = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(:[0-9]+)?(/|\?|#|$)")


def _tracking_link(value: str) -> str:
    """The link as typed, with https:// where a bare host was pasted, written as a link: as a
    browser sends it, an accented host in its ASCII form (exämple.in as xn--exmple-cua.in)."""
    value = value.strip()
    if _BARE_HOST.match(value):
        value = "https://" + value
    parts = urlsplit(value)
    host = parts.hostname or ""
    if not host.isascii() and "@" not in parts.netloc:  # a link with a password is refused
        try:
            port = f":{parts.port}" if parts.port else ""
            netloc = host.encode("idna").decode("ascii") + port
        except (UnicodeError, ValueError):
            pass  # not a host or port any browser would open: the URL check below says so
        else:
            value = urlunsplit(parts._replace(netloc=netloc))
    return percent_encoded(value)


class AmountField(DecimalField):
    """An amount as a person writes it on a form: digits with an optional decimal point.

    Decimal itself also reads 1e400, NaN and Infinity, which no one means as money (the refund
    service would answer them with a 400-digit number); commas and ₹ get a hint instead of
    "Not a valid decimal value".
    """

    def process_formdata(self, valuelist):
        if valuelist and valuelist[0].strip() and not _PLAIN_AMOUNT.match(valuelist[0].strip()):
            self.data = None
            raise ValueError("write it as digits, such as 1000 or 250.50 (no commas or ₹).")
        super().process_formdata(valuelist)


# ASCII digits only (\d would take ٣ or ३), at most 12 before the point (more than any order
# holds, which no message should echo back); the refund service refuses too many decimals.
_PLAIN_AMOUNT = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,6})?$")


class RefundForm(FlaskForm):
    """Refund part of an online payment, or (amount left empty) all that is refundable."""

    # The amount's rules (decimals, Razorpay's minimum, what is left) are the refund service's.
    amount = AmountField("Refund amount", places=2, validators=[Optional()])
    # refunds.money_seen as the page showed it: a second tap is refused, not refunded twice.
    seen = HiddenField()


class ReturnedForm(FlaskForm):
    """Money given back outside Razorpay: part of it, or (amount left empty) all that is left."""

    amount = AmountField("Amount returned", places=2, validators=[Optional()])
    seen = HiddenField()
