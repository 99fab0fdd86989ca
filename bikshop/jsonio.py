"""JSON in and out with exact money: numbers parse to Decimal and Decimal prints as a number."""

from __future__ import annotations

import json
import sys
from decimal import Decimal

from flask.json.provider import DefaultJSONProvider


def loads(data: bytes | str):
    """Parse JSON keeping every digit: floats become Decimal, integers stay int.

    Raises ValueError for anything that is not one JSON document (bad UTF-8, NaN,
    nesting too deep to parse) or that holds a number no one could mean (an exponent past
    Decimal's range, an integer of more than 4,300 digits).
    """
    if isinstance(data, bytes):
        data = data.decode("utf-8-sig")  # RFC 8259 lets a parser ignore a byte order mark
    try:
        return _DECODER.decode(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply")
    except ArithmeticError:  # decimal.InvalidOperation: 1e1000000000000000000
        raise ValueError("a number's exponent is out of range")
    except ValueError as error:
        if "int_max_str_digits" in str(error):  # Python's guard against quadratic int parsing
            raise ValueError(f"an integer has more than {sys.get_int_max_str_digits()} digits")
        raise


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


# One decoder for every call: json.loads with options builds a new one each time.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_reject_constant)


def decimal_to_json(value: Decimal) -> int | float:
    """The JSON number for a money amount: 947.00 -> 947, 499.50 -> 499.5.

    ``float`` is used only to print: a Numeric(12, 2) value has at most 12 significant
    digits, and Python prints the shortest repr that round-trips, so no digit changes.
    """
    normal = value.normalize()
    if normal == normal.to_integral_value():
        return int(normal)
    return float(normal)


class BikshopJSONProvider(DefaultJSONProvider):
    """Flask's provider, with Decimal parsed and printed as exact JSON numbers."""

    ensure_ascii = False
    sort_keys = False

    @staticmethod
    def default(o):
        if isinstance(o, Decimal):
            return decimal_to_json(o)
        return DefaultJSONProvider.default(o)

    def loads(self, s, **kwargs):
        return loads(s)
