"""The order list, the CSV export and the order page (the actions are in actions.py)."""

from __future__ import annotations

import csv
import io
import logging

from flask import (
    Response,
    abort,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from bikshop import heartbeat
from bikshop.admin import bp
from bikshop.admin.forms import (
    CancelForm,
    FilterForm,
    FulfillmentForm,
    LogoutForm,
    MarkPaidForm,
    RefundForm,
    ReturnedForm,
    StatusForm,
)
from bikshop.extensions import db
from bikshop.models import Order
from bikshop.services import admins, orders, payments, refunds, search, webhooks
from bikshop.services.states import FULFILLMENT_STATUS, ORDER_STATUS, next_states

log = logging.getLogger(__name__)


def _filters(form: FilterForm) -> search.OrderFilters:
    return search.OrderFilters(
        q=(form.q.data or "").strip(),
        status=form.status.data or "",
        payment=form.payment.data or "",
        fulfillment=form.fulfillment.data or "",
        date_from=form.date_from.data,
        date_to=form.date_to.data,
    )


def filter_errors(form: FilterForm) -> str:
    """Why the filters were refused, each reason after its field's name, once (both page
    links bad read "Page: …" once)."""
    return " ".join(
        dict.fromkeys(
            f"{form[name].label.text}: {' '.join(errors)}" for name, errors in form.errors.items()
        )
    )


def _filter_args(form: FilterForm) -> dict:
    """The filters as query-string arguments, for links that keep them."""
    names = ("q", "status", "payment", "fulfillment", "date_from", "date_to")
    return {n: request.args[n] for n in names if request.args.get(n)}


@bp.get("/", endpoint="orders")
def orders_list():
    """Orders, newest first, searched and filtered from the URL, with the summary tiles."""
    form = FilterForm(request.args)
    page, status, hidden = search.OrderPage([]), 200, None
    if form.validate():
        filters = _filters(form)
        page = search.order_page(filters, before=form.before.data, after=form.after.data)
        if not page.orders and form.before.data is None and form.after.data is None:
            hidden = search.filtered_out_order(filters)
        _remember_list(request.query_string.decode("ascii", "replace"))
    else:
        status = 400
    return render_template(
        "admin/orders.html",
        form=form,
        page=page,
        hidden_order=hidden,
        summary=search.summary(),
        webhook_trouble=webhooks.signature_trouble(),
        filter_args=_filter_args(form),
        filter_errors=filter_errors(form),
        logout_form=LogoutForm(),
    ), status


@bp.get("/orders.csv")
def export_csv():
    """The filtered orders as CSV, streamed row by row (memory stays flat)."""
    form = FilterForm(request.args)
    if not form.validate():
        abort(400, description=filter_errors(form))
    filters = _filters(form)
    rows = search.csv_rows(filters)
    account = current_user.email

    def generate():
        # A byte order mark first: without it Excel reads UTF-8 as the PC's legacy code page,
        # and every accented or Indian-script name comes out garbled.
        buffer = io.StringIO()
        buffer.write("\ufeff")
        writer = csv.writer(buffer)
        writer.writerow(search.CSV_HEADER)
        count, whole = 0, False
        try:
            for count, row in enumerate(rows, 1):
                writer.writerow([_cell(value) for value in row])
                if count % 500 == 0:
                    heartbeat.beat()  # still working: gunicorn must not time this worker out
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()
            whole = True
        finally:  # a download cut short is recorded too, with what it had
            _log_export(account, filters, count, whole)

    filename = f"orders-{search.local_today().isoformat()}.csv"
    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _log_export(account: str, filters: search.OrderFilters, rows: int, whole: bool) -> None:
    """Who took the customer list, filtered how, and how much of it. The account is masked as
    the sign-in line's is; the search text, often a customer's phone, email or name, is only
    said to be there."""
    chosen = {
        "status": filters.status,
        "payment": filters.payment,
        "fulfillment": filters.fulfillment,
        "date_from": filters.date_from and filters.date_from.isoformat(),
        "date_to": filters.date_to and filters.date_to.isoformat(),
    }
    log.info(
        "orders exported as CSV",
        extra={
            "account": account,
            "filters": {name: value for name, value in chosen.items() if value},
            "search": bool(filters.q),
            "rows": rows,
            "complete": whole,
        },
    )


def _cell(value):
    # A customer's text must not become a spreadsheet formula (=, @, or + and - before a
    # non-number); phone numbers such as +919876543210 stay as typed.
    if isinstance(value, str) and value:
        risky = value[0] in "=@\t\r" or (
            value[0] in "+-" and not value[1:].replace(" ", "").isdigit()
        )
        if risky:
            return "'" + value
    return value


def order_or_404(public_id: str) -> Order:
    """The order, or a 404 page naming the id."""
    order = orders.find_order(public_id)
    if order is None:
        abort(404, description=f"No order {public_id}.")
    return order


# The list as the owner last left it (search, filters, page): the order page's "← Orders"
# goes back there, however many actions were taken on the order in between. Kept with the
# server-side session (admins.remember_list), not in the readable session cookie.
_LIST_QUERY_LIMIT = 1000
# Where the cookie kept it until December 2026: dropped from a cookie still carrying it.
_LIST_QUERY_IN_COOKIE = "orders_list"


def _remember_list(query: str) -> None:
    session.pop(_LIST_QUERY_IN_COOKIE, None)
    admins.remember_list(current_user, query if len(query) <= _LIST_QUERY_LIMIT else "")


def _list_url() -> str:
    query = current_user.list_query
    return url_for("admin.orders") + (f"?{query}" if query else "")


def render_order(order: Order, status: int = 200, error: str | None = None, bad_fields=(), **forms):
    """The order page, with an error (and its status code) when an action was refused.

    A refused form in ``forms`` comes back as sent; a refused refund's question stays open.
    Its fields named in ``bad_fields`` are marked invalid, described by the error, and the
    first takes the focus (a screen reader hears which field and why)."""
    refused = next(iter(forms), None)
    bad = [name for name in bad_fields if refused and name in forms[refused]]
    forms = {
        "status_form": StatusForm(),
        "cancel_form": CancelForm(),
        "paid_form": MarkPaidForm(),
        "refund_form": RefundForm(),
        "returned_form": ReturnedForm(),
        # The order's own values, also on the page answering a POST (Flask-WTF would fill
        # the form from the request's).
        "fulfillment_form": FulfillmentForm(
            formdata=None,
            fulfillment=order.fulfillment_status,
            tracking_url=order.tracking_url or "",
        ),
        "logout_form": LogoutForm(),
    } | forms
    # The fulfilment menu offers only what the order can be now: once delivered, fulfilled.
    reachable = {order.fulfillment_status, *next_states(FULFILLMENT_STATUS, order)}
    menu = forms["fulfillment_form"].fulfillment
    menu.choices = [choice for choice in menu.choices if choice.value in reachable]
    details = search.order_details(order)
    refundable = order.payment_status in ("paid", "partially_refunded")
    online = refunds.refunded_payment(details.payments)
    # What a Razorpay refund can still take: less what refunds still pending hold back.
    refund_left = refunds.left_to_refund(online, details.refunds) if online else None
    return render_template(
        "admin/order.html",
        list_url=_list_url(),
        order=order,
        details=details,
        can_refund=refundable and online is not None and refund_left > 0,
        refund_left=refund_left,
        money_seen=refunds.money_seen(order, details.refunds),
        fulfillment_seen=orders.fulfillment_seen(order),
        refundable=refundable,
        can_record_returned=refundable and online is None,
        unsettled=payments.unsettled_links(order),
        next_statuses=next_states(ORDER_STATUS, order),
        can_fulfil=order.status != "CANCELLED",
        can_mark_paid=order.payment_status == "pending" and order.status != "CANCELLED",
        error=error,
        refused=refused,
        field_state=lambda form_name, name: _field_state(form_name == refused, bad, name),
        **forms,
    ), status


def _field_state(refused: bool, bad: list[str], name: str) -> dict:
    """A field's attributes on the page answering its refused form: invalid, described by the
    error message (``#error``, admin/base.html), and, for the first bad field, focused."""
    if not refused or name not in bad:
        return {}
    return {
        "aria-invalid": "true",
        "aria-describedby": "error",
        "autofocus": name == bad[0],
    }


@bp.get("/orders/<public_id>")
def order(public_id: str):
    """One order: items, totals, customer, payments, timeline, raw request, actions.

    An address typed by hand with the order's number (``/admin/orders/1001``, or ``#1001``)
    leads to the order, as the search box does."""
    order = orders.find_order(public_id)
    number = public_id.removeprefix("#")
    # At most 9 digits: within an INTEGER column's range on every database.
    if order is None and number.isascii() and number.isdigit() and len(number) <= 9:
        found = db.session.scalars(select(Order.public_id).where(Order.number == int(number)))
        canonical = found.first()
        if canonical is not None:
            return redirect(url_for("admin.order", public_id=canonical), 303)
    upper = public_id.upper()  # ord-1003, as the search box takes it
    if order is None and upper != public_id and orders.find_order(upper) is not None:
        return redirect(url_for("admin.order", public_id=upper), 303)
    return render_order(order or order_or_404(public_id))
