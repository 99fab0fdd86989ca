"""The three order state machines and the one function that moves an order along any of them."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select, update

from bikshop.errors import ApiError
from bikshop.extensions import db
from bikshop.models import Order, OrderEvent
from bikshop.models.types import utcnow


@dataclass(frozen=True)
class Machine:
    """A state column and the moves it allows: ``edges[to]`` lists the states it may come from.

    ``label`` names the column as Bik's JSON does (``fulfillmentStatus``, in error fields);
    ``title`` as the shop owner reads it on the timeline and in refusals (``fulfilment``).
    ``open_only`` are moves (``(from, to)``) allowed only while the order's status is still open
    (ORDERED or IN PROGRESS); ``implies[to]`` are columns set with the move (``{column: value}``),
    each recorded on the timeline when it changes something.
    """

    column: str
    label: str
    title: str
    edges: dict[str, tuple[str, ...]]
    open_only: frozenset[tuple[str, str]] = frozenset()
    implies: dict[str, dict[str, str]] = field(default_factory=dict)

    def sources(self, to: str) -> tuple[str, ...]:
        if to not in self.edges:
            raise ApiError(422, f"{to!r} is not a {self.label}", fields=[{"field": self.label}])
        return self.edges[to]


OPEN_STATUSES = ("ORDERED", "IN PROGRESS")
# ORDERED → IN PROGRESS → DELIVERED, forward skips allowed; CANCELLED from any non-final state.
# A delivered order was shipped in full: DELIVERED also makes it fulfilled, so Bik never tells
# the customer "delivered" and "unfulfilled" at once.
ORDER_STATUS = Machine(
    "status",
    "status",
    "status",
    {
        "ORDERED": (),
        "IN PROGRESS": ("ORDERED",),
        "DELIVERED": ("ORDERED", "IN PROGRESS"),
        "CANCELLED": ("ORDERED", "IN PROGRESS"),
    },
    implies={"DELIVERED": {"fulfillment_status": "fulfilled"}},
)
# pending → paid → (partially_refunded →) refunded; paid never goes back to pending.
PAYMENT_STATUS = Machine(
    "payment_status",
    "paymentStatus",
    "payment",
    {
        "pending": (),
        "paid": ("pending",),
        "partially_refunded": ("paid", "partially_refunded"),
        "refunded": ("paid", "partially_refunded"),
    },
)
# unfulfilled → partial → fulfilled. A step back (a mis-click undone) is allowed while the order
# is open; once delivered it stays fulfilled, and a cancelled order's fulfilment never changes.
FULFILLMENT_STATUS = Machine(
    "fulfillment_status",
    "fulfillmentStatus",
    "fulfilment",
    {
        "unfulfilled": ("partial", "fulfilled"),
        "partial": ("unfulfilled", "fulfilled"),
        "fulfilled": ("unfulfilled", "partial"),
    },
    open_only=frozenset(
        {("partial", "unfulfilled"), ("fulfilled", "unfulfilled"), ("fulfilled", "partial")}
    ),
)
MACHINES = {
    machine.column: machine for machine in (ORDER_STATUS, PAYMENT_STATUS, FULFILLMENT_STATUS)
}


def next_states(machine: Machine, order: Order) -> list[str]:
    """The states ``machine`` lets ``order`` move to now, in the machine's order."""
    current = getattr(order, machine.column)
    return [
        state
        for state, sources in machine.edges.items()
        if current in sources
        and ((current, state) not in machine.open_only or order.status in OPEN_STATUSES)
    ]


class IllegalTransition(ApiError):
    """The order's current state does not allow the requested move."""

    def __init__(self, machine: Machine, current: str, to: str, status: str | None = None):
        # In words, as the dashboard names states; ``fields`` keeps the stored values.
        now, wanted = state_words(current), state_words(to)
        if (current, to) in machine.open_only and status not in OPEN_STATUSES:
            hint = f"; the order is {state_words(status or '')}, so it stays {now}"
        else:
            allowed = [state_words(s) for s, sources in machine.edges.items() if current in sources]
            hint = f"; from {now} it can go to {', '.join(allowed)}" if allowed else ""
            hint = hint or f"; {now} is final"
        super().__init__(
            409,
            f"Cannot change {machine.title} from {now} to {wanted}{hint}",
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
    refuse_cancelled: str | None = None,
    where: tuple = (),
) -> bool:
    """Move ``order`` to ``to`` on ``machine`` with a conditional UPDATE, and log it.

    Returns True when this call made the change, False when the order was already there
    (repeats are no-ops) or when a ``where`` condition no longer held for a move the machine
    allows from where the order is now (the caller says what changed meanwhile). Raises
    IllegalTransition for a move the machine forbids, and, with ``refuse_cancelled`` (what the
    move would do, "fulfilled"), a 409 for a cancelled order.
    The caller commits; racing callers cannot both win, because the UPDATE only matches rows
    still in a source state (and not cancelled, when that is asked, and where ``where`` holds).
    """
    column = getattr(Order, machine.column)
    allowed = column.in_(machine.sources(to))
    open_only = [source for source, target in machine.open_only if target == to]
    if open_only:  # those sources only while the order is open
        allowed = allowed & (~column.in_(open_only) | Order.status.in_(OPEN_STATUSES))
    changes = {machine.column: to} | (values or {})
    if not update_order(order, changes, allowed, *where, refuse_cancelled=refuse_cancelled):
        current = getattr(order, machine.column)
        if current == to or (where and to in next_states(machine, order)):
            return False  # a repeat; or the caller's own condition no longer held
        raise IllegalTransition(machine, current, to, order.status)
    record(
        order,
        f"{machine.column}_changed",
        actor,
        message or f"{machine.title.capitalize()} changed to {state_words(to)}",
        data,
    )
    for implied_column, value in machine.implies.get(to, {}).items():
        implied = MACHINES[implied_column]
        if update_order(order, {implied_column: value}, getattr(Order, implied_column) != value):
            record(
                order,
                f"{implied_column}_changed",
                actor,
                f"{implied.title.capitalize()} changed to {state_words(value)}, "
                f"as the order is {state_words(to)}",
            )
    return True


def lock_order(order: Order) -> None:
    """Hold ``order`` until the caller's transaction ends, and reload it: one decision on the
    order at a time, taken on what the one before it committed.

    PostgreSQL locks the row (``SELECT … FOR UPDATE``). SQLite has no row locks and drops
    ``FOR UPDATE``, and its transaction takes the database's write lock only at its first
    write: so it writes first, a no-op UPDATE of the row, and a second request waits there
    (the busy timeout) until the first commits, then reloads what it committed.

    A plain locking SELECT, not ``refresh()``: refresh re-runs the order's eager loads (the
    dashboard loads its items), and PostgreSQL refuses FOR UPDATE across that outer join.
    """
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(
            update(Order)
            .where(Order.id == order.id)
            .values(version=Order.version, updated_at=Order.updated_at)  # (no onupdate stamp)
            .execution_options(synchronize_session=False)
        )
    db.session.execute(
        select(Order)
        .where(Order.id == order.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalars().one()  # the ORM reloads the row only as it is fetched


def update_order(order: Order, values: dict, *conditions, refuse_cancelled: str | None = None):
    """Write ``values`` to ``order`` and bump its version, in one UPDATE that matches only while
    ``conditions`` hold (and, with ``refuse_cancelled``, while the order is not cancelled: a 409
    saying it cannot be ``refuse_cancelled`` otherwise). Returns whether it matched; ``order``
    is reloaded either way. The version is bumped in SQL, so two changes at once make two."""
    if refuse_cancelled:
        refuse_if_cancelled(order, refuse_cancelled)
        conditions = (*conditions, Order.status != "CANCELLED")
    result = db.session.execute(
        update(Order)
        .where(Order.id == order.id, *conditions)
        .values({"version": Order.version + 1, "updated_at": utcnow()} | values)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(order)
    if result.rowcount != 1 and refuse_cancelled:
        refuse_if_cancelled(order, refuse_cancelled)  # cancelled meanwhile
    return result.rowcount == 1


def state_words(state: str) -> str:
    """A stored state as words in a sentence: IN PROGRESS -> in progress, partially_refunded ->
    partially refunded. For people (timeline, dashboard); stored values and Bik's JSON keep
    theirs."""
    return state.replace("_", " ").lower()


def record(order: Order, kind: str, actor: str, message: str, data: dict | None = None) -> None:
    """Add an entry to the order's timeline (in the caller's transaction).

    Linked through the relationship, so it works for an order not yet flushed, without loading
    the timeline.
    """
    db.session.add(OrderEvent(order=order, **event_columns(kind, actor, message, data)))


def event_columns(kind: str, actor: str, message: str, data: dict | None = None) -> dict:
    """A timeline entry's column values, all but ``order_id`` (placeOrder inserts them itself)."""
    return {"kind": kind, "actor": actor, "message": message, "data": data, "created_at": utcnow()}
