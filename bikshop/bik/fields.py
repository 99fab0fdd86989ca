"""marshmallow fields for Bik's JSON: exact money, whole quantities, catalog ids, clean text."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from marshmallow import ValidationError, fields

from bikshop.bik.load import NullMeansAbsent
from bikshop.links import percent_encoded

MAX_MONEY = Decimal("9999999999.99")  # what Numeric(12, 2) holds
_CANONICAL_INT = re.compile(r"^(0|-?[1-9][0-9]*)$")
# Unicode's control (Cc: C0, DEL, C1) and surrogate (Cs) characters, tab and line breaks aside;
# tests/test_bik_bad_input.py checks this against unicodedata.category for every code point.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


# The bidirectional embeddings, overrides and isolates (Cf). WhatsApp and Android wrap pasted
# phone numbers and names in them (U+202A … U+202C, U+2068 … U+2069), so they are removed, not
# refused: an order must not be lost over them, and removed they cannot make a name or address
# show other than it is stored (U+202E reverses what follows). Zero-width joiners (Indic
# scripts, emoji sequences) and the plain direction marks are text and stay.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def _is_number(value) -> bool:
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


class Text(fields.String):
    """A string of printable text: no control characters, no broken surrogates, bounded length.

    ``identifier``: an id matched exactly (``draftOrderId``, ``orderId``), where a direction
    control is refused rather than removed: removed, two different ids would be one."""

    def __init__(
        self, *, max_length: int = 255, strip: bool = True, identifier: bool = False, **kwargs
    ):
        super().__init__(**kwargs)
        self.max_length = max_length
        self.strip = strip
        self.identifier = identifier
        self.metadata.setdefault("maxLength", max_length)

    def _deserialize(self, value, attr, data, **kwargs):
        return clean_text(value, self.max_length, strip=self.strip, identifier=self.identifier)


class NumberOrText(Text):
    """Text a sender's form may have kept as a whole number (a PIN code ``560102``): read as its
    digits, so a number where the guide shows a string does not lose the order. A fraction or a
    negative number is still refused. (Phone numbers stay text only: as a number, a ``+`` or a
    leading 0 would be gone.)"""

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {})
        kwargs["metadata"].setdefault(
            "description", "A string; a whole number is read as its digits"
        )
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, Decimal):  # written as a double: 560102.0, 5.60102e5
            value = _whole_id(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            value = str(value)
        elif not isinstance(value, str):
            raise ValidationError("Must be a string (or a whole number, read as its digits).")
        return super()._deserialize(value, attr, data, **kwargs)


def clean_text(value, max_length: int, *, strip: bool = True, identifier: bool = False) -> str:
    """``value`` as printable text of at most ``max_length`` characters, or a ValidationError.

    NUL and lone surrogates would fail on PostgreSQL (and make the order unreadable later), so
    they are refused here, where the client still learns which field was wrong.
    """
    if not isinstance(value, str):
        raise ValidationError("Must be a string.")
    if len(value) > max_length * 4:  # hopeless; don't scan a megabyte character by character
        raise ValidationError(f"Longer than {max_length} characters ({len(value)}).")
    found = _UNPRINTABLE.search(value)
    if found:
        code = ord(found.group())
        what = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "the control character"
        raise ValidationError(f"Contains {what} U+{code:04X}; send printable text.")
    if identifier:
        found = _BIDI_CONTROLS.search(value)
        if found:
            raise ValidationError(
                f"Contains the bidirectional control character U+{ord(found.group()):04X}; "
                "send the id as it is."
            )
    else:
        value = _BIDI_CONTROLS.sub("", value)
    if strip:
        value = value.strip()
    if len(value) > max_length:
        raise ValidationError(f"Longer than {max_length} characters ({len(value)}).")
    return value


class Tags(fields.Field):
    """Bik's ``tags``: a string as in the sample, or a list of strings; kept as one string."""

    def __init__(self, *, max_length: int = 1024, **kwargs):
        kwargs.setdefault("metadata", {})
        kwargs["metadata"].setdefault(
            "description", "A string, or a list of strings (stored joined by ', ')"
        )
        kwargs["metadata"].setdefault(
            "oneOf", [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
        )
        super().__init__(**kwargs)
        self.max_length = max_length

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, list):
            if not all(isinstance(tag, str) for tag in value):
                raise ValidationError("Must be a string or a list of strings.")
            value = ", ".join(tag.strip() for tag in value if tag.strip())
        elif not isinstance(value, str):
            raise ValidationError("Must be a string or a list of strings.")
        return clean_text(value, self.max_length) or None


class ImageURL(Text):
    """A product image: an http(s) URL with a host. Characters a catalog may leave raw (spaces,
    non-ASCII) are percent-encoded rather than refused: an odd image URL must not lose an order.
    For the same reason, a URL longer than ``max_length``, as sent or once encoded, is dropped
    (the order has no image; the raw request keeps what was sent) instead of refused, and a
    protocol-relative URL (``//cdn.example.com/a.png``, as Shopify-era catalogs store images) is
    read as https."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        del self.metadata["maxLength"]  # a longer one is left out, not refused
        self.metadata.setdefault(
            "description",
            f"An http(s) URL (or //host/path, read as https); one longer than "
            f"{self.max_length:,} characters is left out of the order, not refused",
        )

    def _deserialize(self, value, attr, data, **kwargs):
        too_long = isinstance(value, str) and len(value.strip()) > self.max_length
        # A long one is still checked as text and as a URL (a javascript: one refused), and
        # then dropped, as when encoding makes it too long (below).
        url = clean_text(value, len(value) if too_long else self.max_length, strip=self.strip)
        if not url:
            return None
        if url.startswith("//"):
            url = "https:" + url
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:  # a malformed [IPv6] host: an http(s) URL no browser could load
            return None if url.lower().startswith(("http://", "https://")) else _not_an_image()
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not host:
            _not_an_image()
        if too_long:
            return None
        url = scheme + url[len(parts.scheme) :]  # HTTPS://… as https://…, as browsers read it
        encoded = percent_encoded(url)
        return encoded if len(encoded) <= self.max_length else None


def _not_an_image():
    raise ValidationError("Must be an http(s) URL of the product image.")


class Money(NullMeansAbsent, fields.Number):
    """A JSON number of major units (499.5 = ₹499.50): not negative, at most two decimals.

    A caller that adds prices in binary floating point (JavaScript's numbers: 199.99 × 3 is
    599.9699999999999) sends amounts a few units in the last place off a whole paisa; such an
    amount is read as that paisa amount. Anything further off (499.001) is refused.
    """

    num_type = Decimal

    def __init__(self, *, absent_is_zero: bool = False, **kwargs):
        kwargs.setdefault("metadata", {})
        kwargs["metadata"].setdefault("minimum", 0)
        kwargs["metadata"].setdefault("maximum", float(MAX_MONEY))
        # Not multipleOf 0.01: validators divide in binary floating point, and 599.97 / 0.01
        # is 59996.99999999999 there, so they would refuse amounts bikshop takes.
        kwargs["metadata"].setdefault(
            "description", "Major units (499.5 is ₹499.50), at most two decimals"
        )
        if absent_is_zero:  # documented as optional and nullable, 0 when so
            kwargs |= {"required": False, "allow_none": True, "load_default": _ZERO}
            kwargs["metadata"].setdefault("default", 0)
        super().__init__(**kwargs)
        self.null_means_absent = absent_is_zero

    def _deserialize(self, value, attr, data, **kwargs):
        if not _is_number(value):
            raise ValidationError("Must be a JSON number, such as 499 or 499.5.")
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise ValidationError("Must be a finite number.")
        if not amount.is_finite():
            raise ValidationError("Must be a finite number.")
        # A hair below zero (3.3 - 1.1 - 2.2 is -4.4e-16 in doubles) is 0, as any other float
        # noise is its paisa; copy_abs, as abs() would overflow on 1e1000000.
        if amount < 0 and amount.copy_abs() > _NOISE_NEAR_ZERO:
            raise ValidationError(f"Must not be negative (got {value}).")
        if amount > MAX_MONEY:
            raise ValidationError(f"Must be at most {MAX_MONEY} (got {value}).")
        paise = amount.quantize(_PAISA)
        if amount != paise and abs(amount - paise) > (
            _float_noise(paise) if paise else _NOISE_NEAR_ZERO
        ):
            raise ValidationError(f"Must have at most two decimal places (got {value}).")
        return paise + 0  # + 0 turns -0.00 into 0.00

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else Decimal(value)


_PAISA = Decimal("0.01")
_ZERO = Decimal("0.00")


def _float_noise(amount: Decimal) -> Decimal:
    """How far binary floating point arithmetic can stray from ``amount`` in a few operations:
    64 units in the last place of a double of that size (at least that of 1.0)."""
    return Decimal(64 * math.ulp(max(float(amount), 1.0)))


# An amount near zero is a difference (a total after a discount as large as the basket): its
# noise is that of the amounts it was taken from, at most the largest one stored (1.2e-4).
_NOISE_NEAR_ZERO = _float_noise(MAX_MONEY)


class Quantity(fields.Integer):
    """A whole number of units, 1 or more (2.0 is accepted as 2; 2.5 is not)."""

    def __init__(self, *, maximum: int = 100_000, **kwargs):
        kwargs.setdefault("metadata", {})
        kwargs["metadata"] |= {"minimum": 1, "maximum": maximum}
        super().__init__(**kwargs)
        self.maximum = maximum

    def _deserialize(self, value, attr, data, **kwargs):
        if not _is_number(value):
            raise ValidationError("Must be a whole JSON number such as 2.")
        # Range first, on the Decimal: int(Decimal("1e999999999")) would build a huge integer.
        if value < 1:
            raise ValidationError(f"Must be at least 1 (got {value}).")
        if value > self.maximum:
            raise ValidationError(f"Must be at most {self.maximum} (got {value}).")
        if value != int(value):
            raise ValidationError(f"Must be a whole number (got {value}).")
        return int(value)


class CatalogId(fields.Field):
    """A product or variant id: a JSON integer of up to 64 digits, or a string; kept as text.

    Dumped back as a JSON integer when it is one, so every digit survives (no float).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {})
        kwargs["metadata"].setdefault(
            "description",
            "Catalog id: an integer of up to 64 digits, or a string of up to 64 characters",
        )
        kwargs["metadata"].setdefault(
            "oneOf",
            [
                {"type": "integer"},
                # No spaces and no control characters (C0, DEL and C1), as _deserialize checks.
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 64,
                    "pattern": r"^[^\s\x00-\x1f\x7f-\x9f]+$",
                },
            ],
        )
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, Decimal):  # written with a fraction or an exponent: 2.0, 1e2
            value = _whole_id(value)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValidationError("Must be an integer or a string.")
        text = str(value).strip()
        if isinstance(value, int) and len(text) > 64:
            raise ValidationError(f"Must have at most 64 digits (got {len(text)}).")
        # Every whitespace character but " " is unprintable (checked for each code point).
        if not text or len(text) > 64 or " " in text or not text.isprintable():
            raise ValidationError("Must be 1 to 64 printable characters without spaces.")
        return text

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return int(value) if _CANONICAL_INT.match(value) else value


def _whole_id(value: Decimal) -> int:
    """A catalog id (or a PIN code) a double-based serializer wrote as ``40946134352009.0``
    or ``4.0946134352009e13``: its integer, as for a quantity of ``2.0``. Only up to 2**53,
    what a double holds exactly: an id beyond it written so has already lost digits on its way
    (9007199254740993 arrives as ...992), and would be stored as another product's. Compared
    before ``int()``, which would build a huge integer of ``1e999999999``."""
    if not value.is_finite() or value != value.to_integral_value():
        raise ValidationError(f"Must be an integer or a string (got {value}).")
    if value.copy_abs() > _EXACT_IN_A_DOUBLE:  # abs() would overflow on 1e1000000
        raise ValidationError(
            "Beyond 2^53, a number written with a fraction or an exponent has lost digits: "
            "send it as an integer or a string."
        )
    return int(value)


_EXACT_IN_A_DOUBLE = 2**53


class BoundedList(fields.List):
    """A JSON array with at most ``max_length()`` elements, counted before any is validated.

    Without the early count a 1 MiB body of ``[{}, {}, ...]`` costs seconds of validation and
    answers with hundreds of thousands of error lines.
    """

    def __init__(self, inner, *, max_length, noun: str = "element", **kwargs):
        kwargs.setdefault("metadata", {})
        kwargs["metadata"].setdefault("minItems", 1)
        super().__init__(inner, **kwargs)
        self.max_length = max_length  # a callable, so the limit can come from the app config
        self.noun = noun

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, list):
            limit = self.max_length()
            if not value:
                raise ValidationError(f"Needs at least one {self.noun}.")
            if len(value) > limit:
                raise ValidationError(f"At most {limit} {self.noun}s (got {len(value)}).")
        return super()._deserialize(value, attr, data, **kwargs)


class TextOut(fields.String):
    """A string in the answer that Bik's tables type as ``string`` (not nullable): None is ""."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dump_default", "")
        super().__init__(**kwargs)

    def _serialize(self, value, attr, obj, **kwargs):
        return "" if value is None else super()._serialize(value, attr, obj, **kwargs)


class StrictBoolean(fields.Boolean):
    """Only JSON ``true`` or ``false``: "yes", 1 and null are errors, not guesses."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise ValidationError("Must be true or false.")
        return value
