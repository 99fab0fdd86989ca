"""Bik's request and response bodies as marshmallow schemas (also the OpenAPI document)."""

from __future__ import annotations

import re

from flask import current_app
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from bikshop.bik.fields import (
    BoundedList,
    CatalogId,
    ImageURL,
    Money,
    NumberOrText,
    Quantity,
    StrictBoolean,
    Tags,
    Text,
    TextOut,
)
from bikshop.bik.load import CompiledLoad
from bikshop.models.orders import BIK_PAYMENT_STATUSES, FULFILLMENT_STATUSES, ORDER_STATUSES
from bikshop.money import format_plain, is_currency_code

# Digits, spaces and ()-. with an optional + at the start, or after an opening bracket as in
# "(+91) 98765-43210"; at least 6 of them digits (a number, not "((((((").
_PHONE = re.compile(r"^(?=(?:\D*\d){6})\(?\+?[0-9 ()\-.]{5,32}$")
# An address bikshop can show and search: something@something, without spaces. Nothing is sent
# to it, so a stricter check (a dotted domain, no trailing dot) would only lose orders.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
MAX_EMAIL = 320


class BikSchema(CompiledLoad):
    """Unknown fields are tolerated (the raw request keeps them) and never rejected. Loads
    compiled (bikshop/bik/load.py): marshmallow's own load runs for any body with a problem."""

    class Meta:
        unknown = EXCLUDE
        ordered = True

    # marshmallow's "Invalid input type." for an order, item or address sent as a list, a
    # number or a string.
    error_messages = {"type": "Must be an object."}


_NOT_EMPTY = validate.Length(min=1, error="Must not be empty.")


def _text(max_length=255, field=Text, **kwargs):
    return field(max_length=max_length, load_default=None, allow_none=True, **kwargs)


class AddressSchema(BikSchema):
    """BikAddress: every line optional, since Bik may know only part of it."""

    firstName = _text()
    lastName = _text()
    address1 = _text(1024)
    address2 = _text(1024)
    city = _text()
    state = _text()
    country = _text()
    countryCode = _text(8)
    zip = _text(32, NumberOrText)
    phoneNumber = _text(32)


class ItemSchema(BikSchema):
    """BikOrderItem."""

    productId = CatalogId(required=True)
    variantId = CatalogId(required=True)
    name = Text(required=True, max_length=1024, validate=_NOT_EMPTY)
    variantName = _text(1024)
    quantity = Quantity(required=True)
    price = Money(required=True)
    image = ImageURL(max_length=2048, load_default=None, allow_none=True)


class IncomingOrderSchema(BikSchema):
    """The fully priced BikOrder inside placeOrder; Bik's prices are authoritative."""

    # Bik's own id and name for the order: bikshop assigns its own, so only text is asked of
    # them (a long one must not lose the order).
    id = _text(1024)
    name = _text(1024)
    phoneNumber = Text(required=True, max_length=32, metadata={"pattern": _PHONE.pattern})
    email = _text(MAX_EMAIL)
    items = BoundedList(
        fields.Nested(ItemSchema),
        required=True,
        noun="item",
        max_length=lambda: current_app.config["MAX_ITEMS_PER_ORDER"],
        metadata={"description": "At most BIKSHOP_MAX_ITEMS_PER_ORDER items (500 by default)"},
    )
    subTotal = Money(required=True)
    # No shipping line or no coupon may come as 0, null or nothing at all: all mean 0, and the
    # totals must still add up, so no amount is ever guessed.
    shippingCharge = Money(absent_is_zero=True)
    discount = Money(absent_is_zero=True)
    total = Money(required=True)
    currency = _text(
        8,
        metadata={
            "pattern": "^([A-Za-z]{3})?$",
            "description": "An ISO 4217 code, in any case; empty or absent: BIKSHOP_CURRENCY",
        },
    )
    address = fields.Nested(AddressSchema, load_default=None, allow_none=True)
    tags = Tags(load_default=None, allow_none=True)

    # Run beside the fields' own errors, not only once they all pass: one answer names every
    # problem (a bad quantity and a bad email; a bad email and totals that do not add up).
    @validates_schema(skip_on_field_errors=False)
    def _check(self, data, **kwargs):
        errors: dict = {}
        phone = data.get("phoneNumber")
        if isinstance(phone, str) and not _PHONE.match(phone):
            errors["phoneNumber"] = [f"Not a phone number: {phone!r}."]
        email = data.get("email")
        if email and not _EMAIL.match(email):
            errors["email"] = [f"Not an email address: {email!r}."]
        elif email and len(email.lower()) > MAX_EMAIL:  # "İ".lower() is two characters
            errors["email"] = [f"Longer than {MAX_EMAIL} characters once lowercased."]
        currency = data.get("currency")
        # Shown with escapes (!a): a look-alike such as the Kelvin sign in "KWD" is visible.
        if currency and not re.fullmatch(r"[A-Za-z]{3}", currency):
            errors["currency"] = [
                f"Must be 3 ASCII letters (an ISO 4217 code) or empty (got {currency!a})."
            ]
        elif currency and not is_currency_code(currency.upper()):
            errors["currency"] = [
                f"Not an ISO 4217 currency code (got {currency!a}): send one such as INR, or "
                "leave it empty for the store's currency."
            ]
        errors |= self._totals_errors(data)
        if errors:
            raise ValidationError(errors)

    @staticmethod
    def _totals_errors(data) -> dict:
        """subTotal = Σ price × quantity and total = subTotal + shippingCharge − discount, each
        checked when the figures it needs are valid (a refused one has its own error)."""
        errors = {}
        items, sub_total = data.get("items"), data.get("subTotal")
        lines_valid = isinstance(items, list) and all(
            isinstance(i, dict) and "price" in i and "quantity" in i for i in items
        )
        if lines_valid and sub_total is not None:
            expected_sub = sum((i["price"] * i["quantity"] for i in items), start=0)
            if sub_total != expected_sub:
                errors["subTotal"] = [
                    f"Sent {format_plain(sub_total)} but the items add up to "
                    f"{format_plain(expected_sub)} (sum of price × quantity)."
                ]
        parts = [data.get(key) for key in ("subTotal", "shippingCharge", "discount", "total")]
        if None not in parts:
            sub_total, shipping, discount, total = parts
            expected_total = sub_total + shipping - discount
            if total != expected_total:
                errors["total"] = [
                    f"Sent {format_plain(total)} but subTotal + shippingCharge − discount is "
                    f"{format_plain(expected_total)}."
                ]
        return errors


class PlaceOrderRequest(BikSchema):
    """Body of POST placeOrder."""

    draftOrderId = Text(required=True, max_length=128, identifier=True, validate=_NOT_EMPTY)
    paymentPending = StrictBoolean(required=True)
    order = fields.Nested(IncomingOrderSchema, required=True)


class GetOrderRequest(BikSchema):
    """Body of POST getOrder."""

    orderId = Text(required=True, max_length=64, identifier=True, validate=_NOT_EMPTY)


# --- responses -------------------------------------------------------------------------------


class ItemOut(Schema):
    class Meta:
        ordered = True

    name = fields.String()
    variantName = TextOut(attribute="variant_name")
    variantId = CatalogId(attribute="variant_id")
    productId = CatalogId(attribute="product_id")
    quantity = fields.Integer()
    price = Money()
    image = fields.String(allow_none=True)


class AddressOut(Schema):
    class Meta:
        ordered = True

    # Every key is always present: "" for the guide's string fields, null for the nullable ones.
    firstName = TextOut()
    lastName = TextOut()
    address1 = TextOut()
    address2 = fields.String(allow_none=True, dump_default=None)
    city = TextOut()
    state = fields.String(allow_none=True, dump_default=None)
    country = TextOut()
    countryCode = fields.String(allow_none=True, dump_default=None)
    zip = TextOut()
    phoneNumber = fields.String(allow_none=True, dump_default=None)


class DeliveryInfoOut(Schema):
    trackingURL = fields.String(allow_none=True)


class PartnersDataOut(Schema):
    id = fields.String(metadata={"description": "Bik's draftOrderId"})


class BikOrderOut(Schema):
    """BikOrder as Bik reads it, from the stored order."""

    class Meta:
        ordered = True

    id = fields.String(attribute="public_id")
    name = fields.String()
    status = fields.String(metadata={"enum": list(ORDER_STATUSES)})
    paymentStatus = fields.String(
        attribute="bik_payment_status",
        metadata={
            "enum": list(BIK_PAYMENT_STATUSES),
            "description": "voided: the order was cancelled and nothing was paid",
        },
    )
    fulfillmentStatus = fields.String(
        attribute="fulfillment_status", metadata={"enum": list(FULFILLMENT_STATUSES)}
    )
    items = fields.List(fields.Nested(ItemOut))
    subTotal = Money(attribute="sub_total")
    shippingCharge = Money(attribute="shipping_charge")
    discount = Money()
    total = Money()
    currency = fields.String()
    address = fields.Nested(AddressOut, allow_none=True)
    phoneNumber = fields.String(attribute="phone_number")
    email = TextOut(metadata={"description": "Lowercased; empty when Bik sent none"})
    invoiceUrl = fields.String(attribute="invoice_url", allow_none=True)
    deliveryInfo = fields.Nested(DeliveryInfoOut, attribute="delivery_info")
    partnersData = fields.Nested(PartnersDataOut, attribute="partners_data")
    createdAt = fields.DateTime(attribute="created_at")


# Every key of an answer is always there (null where the guide allows it): documented as required.
for _answer in (ItemOut, AddressOut, DeliveryInfoOut, PartnersDataOut, BikOrderOut):
    for _field in _answer._declared_fields.values():
        _field.required = True


class OrderEnvelope(Schema):
    """Both endpoints answer ``{"order": BikOrder}``."""

    order = fields.Nested(BikOrderOut)
