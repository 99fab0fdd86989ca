"""The actions on an order: each validates its form (CSRF included), calls one service
function, and shows the outcome on the order page."""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, redirect, url_for
from flask_login import current_user

from bikshop.admin import bp
from bikshop.admin.display import money
from bikshop.admin.forms import (
    CancelForm,
    FulfillmentForm,
    MarkPaidForm,
    RefundForm,
    ReturnedForm,
    StatusForm,
    csrf_failed,
)
from bikshop.admin.views import order_or_404, render_order
from bikshop.errors import ApiError
from bikshop.extensions import db
from bikshop.models import Order
from bikshop.services import orders, payments, refunds
from bikshop.services.states import state_words


def _act(
    public_id: str,
    form,
    form_name: str,
    action: Callable[[Order], object],
    done: str | Callable[[object], str],
):
    """Validate ``form`` (CSRF included), run one service function, and show the outcome
    (``done``, or what ``done`` makes of the function's result)."""
    order = order_or_404(public_id)
    if not form.validate_on_submit():
        if csrf_failed(form):
            message = "This form expired or did not come from this page. Reload and try again."
        else:
            message = " ".join(
                f"{form[name].label.text}: {' '.join(errors)}"
                for name, errors in form.errors.items()
            )
        bad = [name for name in form.errors if name != "csrf_token"]
        return render_order(order, 400, message, bad_fields=bad, **{form_name: form})
    try:
        changed = action(order)
    except ApiError as exc:  # IllegalTransition among them: say why, change nothing
        db.session.rollback()
        # The form comes back as sent (a refund amount over what is left stays in its box),
        # but a form that sets values, refused as made on an out-of-date page, comes back with
        # the order as it is now: saved again as sent, it would undo the newer change.
        stale = exc.error_code == "changed_meanwhile" and form_name in _SETS_VALUES
        forms = {} if stale else {form_name: form}
        bad = [problem["field"] for problem in exc.fields if "field" in problem]
        return render_order(
            order_or_404(public_id), exc.code, exc.description, bad_fields=bad, **forms
        )
    if callable(done) and changed:
        done = done(changed)
    flash(done if changed else "Nothing to change: the order was already like that.")
    return redirect(url_for("admin.order", public_id=public_id), 303)


def _actor() -> str:
    return f"admin:{current_user.email}"


# Forms whose fields are the order's own values (not amounts that add to it).
_SETS_VALUES = frozenset({"fulfillment_form"})


@bp.post("/orders/<public_id>/status")
def change_status(public_id: str):
    """Move the order's status along its machine."""
    form = StatusForm()
    return _act(
        public_id,
        form,
        "status_form",
        lambda order: orders.change_status(order, form.status.data, actor=_actor()),
        f"Status changed to {state_words(form.status.data or '')}.",
    )


@bp.post("/orders/<public_id>/cancel")
def cancel(public_id: str):
    """Cancel the order (from any state that is not final)."""
    return _act(
        public_id,
        CancelForm(),
        "cancel_form",
        lambda order: orders.change_status(order, "CANCELLED", actor=_actor()),
        "Order cancelled.",
    )


@bp.post("/orders/<public_id>/fulfillment")
def set_fulfillment(public_id: str):
    """Set the fulfilment status and the tracking link Bik shares with the customer."""
    form = FulfillmentForm()
    return _act(
        public_id,
        form,
        "fulfillment_form",
        lambda order: orders.set_fulfillment(
            order,
            form.fulfillment.data,
            actor=_actor(),
            tracking_url=form.tracking_url.data or "",
            seen=form.seen.data or None,  # a page from before the field: as before
        ),
        "Fulfilment saved.",
    )


@bp.post("/orders/<public_id>/paid")
def mark_paid(public_id: str):
    """Record cash on delivery received."""
    return _act(
        public_id,
        MarkPaidForm(),
        "paid_form",
        lambda order: payments.mark_paid_offline(order, actor=_actor()),
        "Marked as paid (cash).",
    )


@bp.post("/orders/<public_id>/refund")
def refund(public_id: str):
    """Refund all or part of an online payment through Razorpay."""
    form = RefundForm()
    return _act(
        public_id,
        form,
        "refund_form",
        lambda order: _refund_asked(
            order, payments.refund(order, form.amount.data, actor=_actor(), seen=form.seen.data)
        ),
        lambda asked: asked,
    )


def _refund_asked(order, row) -> str:
    """What the owner is told of a refund asked of Razorpay: pending until Razorpay confirms
    it (or done, when Razorpay answered it processed), and what the order then is: refunded,
    or partly refunded while some of the money is kept."""
    amount = money(row.amount, order.currency)
    whole = refunds.state_once_settled(order) == "refunded"
    state = "refunded" if whole else "partly refunded"
    if row.status == "processed":
        return f"Refunded {amount} through Razorpay; the order is {state}."
    return (
        f"Refund of {amount} asked of Razorpay; it shows under Payments as pending, and the "
        f"order as {state} once Razorpay confirms."
    )


@bp.post("/orders/<public_id>/returned")
def returned(public_id: str):
    """Record money given back outside Razorpay (an order paid in cash, or before Bik)."""
    form = ReturnedForm()
    return _act(
        public_id,
        form,
        "returned_form",
        lambda order: payments.return_outside_razorpay(
            order, form.amount.data, actor=_actor(), seen=form.seen.data
        ),
        "Recorded: money returned to the customer.",
    )


def _order_page_instead(public_id: str):
    """An action's address opened as a page (a refused action's page reloaded later,
    bookmarked or shared) shows the order rather than 'method not allowed'; nothing changes."""
    return redirect(url_for("admin.order", public_id=public_id), 303)


for _action in ("status", "cancel", "fulfillment", "paid", "refund", "returned"):
    bp.add_url_rule(
        f"/orders/<public_id>/{_action}",
        endpoint=f"{_action}_page",
        view_func=_order_page_instead,
        methods=["GET"],
    )
