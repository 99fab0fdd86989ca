"""The three order state machines and the one function that moves an order along any of them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update

from bikshop.errors import ApiError
from bikshop.extensions import db
from bikshop.models import Order, OrderEvent
from bikshop.models.types import utcnow


@dataclass(frozen=True)
class Machine:
    """A state column and the moves it allows: ``edges[to]`` lists the states it may come from."""

    column: str
    label: str
    edges: dict[str, tuple[str, ...]]

    def sources(self, to: str) -> tuple[str, ...]:
        if to not in self.edges:
            raise ApiError(422, f"{to!r} is not a {self.label}", fields=[{"field": self.label}])
        return self.edges[to]


# ORDERED → IN PROGRESS → DELIVERED, forward skips allowed; CANCELLED from any non-final state.
ORDER_STATUS = Machine(
    "status",
    "status",
    {
        "ORDERED": (),
        "IN PROGRESS": ("ORDERED",),
        "DELIVERED": ("ORDERED", "IN PROGRESS"),
        "CANCELLED": ("ORDERED", "IN PROGRESS"),
    },
)
# pending → paid → (partially_refunded →) refunded; paid never goes back to pending.
PAYMENT_STATUS = Machine(
    "payment_status",
    "paymentStatus",
    {
        "pending": (),
        "paid": ("pending",),
        "partially_refunded": ("paid", "partially_refunded"),
        "refunded": ("paid", "partially_refunded"),
    },
)
# unfulfilled → partial → fulfilled.
FULFILLMENT_STATUS = Machine(
    "fulfillment_status",
    "fulfillmentStatus",
    {
        "unfulfilled": (),
        "partial": ("unfulfilled",),
        "fulfilled": ("unfulfilled", "partial"),
    },
)


class IllegalTransition(ApiError):
    """The order's current state does not allow the requested move."""

    def __init__(self, machine: Machine, current: str, to: str):
        allowed = [s for s, sources in machine.edges.items() if current in sources]
        hint = (
            f"; from {current} it can go to {', '.join(allowed)}"
            if allowed
            else (f"; {current} is final")
        )
        super().__init__(
            409,
            f"Cannot change {machine.label} from {current} to {to}{hint}",
            code="illegal_transition",
            fields=[{"field": machine.label, "message": f"currently {current}"}],
        )


def refuse_if_cancelled(order: Order, what: str) -> None:
    """CANCELLED is final for the whole order: ``what`` ("fulfilled", "marked paid") cannot
    happen to it (a 409 naming the status)."""
    if order.status == "CANCELLED":
        raise ApiError(
            409,
            f"A cancelled order cannot be {what}",
            code="illegal_transition",
            fields=[{"field": "status", "message": "currently CANCELLED"}],
        )


def transition(
    order: Order,
    machine: Machine,
    to: str,
    *,
    actor: str,
    message: str | None = None,
    data: dict | None = None,
    values: dict | None = None,
) -> bool:
    """Move ``order`` to ``to`` on ``machine`` with a conditional UPDATE, and log it.

    Returns True when this call made the change, False when the order was already there
    (repeats are no-ops). Raises IllegalTransition for a move the machine forbids. The
    caller commits; racing callers cannot both win, because the UPDATE only matches rows
    still in a source state.
    """
    sources = machine.sources(to)
    column = getattr(Order, machine.column)
    result = db.session.execute(
        update(Order)
        .where(Order.id == order.id, column.in_(sources))
        .values(
            {machine.column: to, "version": Order.version + 1, "updated_at": utcnow()}
            | (values or {})
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.refresh(order)
        current = getattr(order, machine.column)
        if current == to:
            return False
        raise IllegalTransition(machine, current, to)
    db.session.refresh(order)
    record(
        order,
        f"{machine.column}_changed",
        actor,
        message or f"{machine.label} changed to {to}",
        data,
    )
    return True


def record(order: Order, kind: str, actor: str, message: str, data: dict | None = None) -> None:
    """Add an entry to the order's timeline (in the caller's transaction).

    Linked through the relationship, so it works for an order not yet flushed, without loading
    the timeline.
    """
    db.session.add(OrderEvent(order=order, **event_columns(kind, actor, message, data)))


def event_columns(kind: str, actor: str, message: str, data: dict | None = None) -> dict:
    """A timeline entry's column values, all but ``order_id`` (placeOrder inserts them itself)."""
    return {"kind": kind, "actor": actor, "message": message, "data": data, "created_at": utcnow()}
