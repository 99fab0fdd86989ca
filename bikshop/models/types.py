"""Column types shared by the models."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Numeric, func
from sqlalchemy.types import TypeDecorator

Money = Numeric(12, 2)


# The largest id or number an INTEGER column holds (PostgreSQL's): a value beyond it names no row.
LARGEST_ID = 2**31 - 1


def money_in_sql(expression):
    """Money summed or compared inside a statement, rounded to Money's two places. SQLite keeps
    Numeric as a binary REAL: there 1.37 + 914.19 + 31.44 is 947.0000000000001 (more than a
    ₹947 payment) and 0.10 + 0.20 is 0.30000000000000004 (never equal to 0.30). PostgreSQL's
    numeric is exact, and rounding leaves it as it is."""
    return func.round(expression, 2, type_=Money)


def utcnow() -> datetime:
    """Now, in UTC; used as a column default callable (never a value fixed at import)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every database (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        # PostgreSQL answers in the session's time zone: always hand out UTC.
        return value.astimezone(UTC)
