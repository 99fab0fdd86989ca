"""Operator commands for a customer's personal data: ``forget-customer`` (erasure, DPDP Act
2023 s. 12) and ``export-customer`` (access, s. 11). ``prune --personal-data-after`` erases
on a schedule (bikshop/ops.py); all three erase through ``services.privacy``."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from bikshop.extensions import db
from bikshop.models import Order
from bikshop.services.search import store_zone

ACTOR = "cli"


def customer_options(command):
    """``--phone P`` or ``--email E``, exactly one."""
    command = click.option("--email", metavar="E", help="The customer's email (any case).")(command)
    return click.option(
        "--phone",
        metavar="P",
        help="The customer's phone, in any form (+91 98765 43210, 9876543210).",
    )(command)


def _customer(phone: str | None, email: str | None) -> dict:
    if (phone is None) == (email is None):
        raise click.UsageError("give the customer's --phone or --email (one of them)")
    if phone is not None and not any(c.isdigit() for c in phone):
        raise click.UsageError("--phone holds no digits")
    if email is not None and "@" not in email:
        raise click.UsageError("--email is not an email address")
    return {"phone": phone} if phone is not None else {"email": email}


def _listed(order) -> str:
    """An order as the list before erasing shows it: no personal data."""
    placed = order.created_at.astimezone(store_zone()).date().isoformat()  # as the dashboard
    return (
        f"{order.public_id} placed {placed}, {order.status.lower()}, payment "
        f"{order.payment_status.replace('_', ' ')}, {format(order.total, 'f')} {order.currency}"
    )


@click.command("forget-customer")
@customer_options
@click.option("--dry-run", is_flag=True, help="Say what would be erased; change nothing.")
@click.option("--yes", is_flag=True, help="Erase without asking (for scripts).")
@with_appcontext
def forget_customer_command(phone: str | None, email: str | None, dry_run: bool, yes: bool):
    """Erase one customer's personal data from their orders, on their request.

    Each order keeps its number, items, amounts and states (Bik's getOrder still answers it)
    and, with a tax invoice, what GST requires the shop to keep; the customer's phone, email,
    name, address lines, Bik's request and the personal fields of Razorpay's records go, the
    invoice link stops working and its cached PDFs are deleted. An order still open, with an
    open payment link or a pending refund is refused, saying why. Exit 1 if any was refused.
    The personal data erased is never printed.
    """
    from bikshop.services.privacy import erase_customer_data, find_customer_orders

    orders = find_customer_orders(**_customer(phone, email))
    if not orders:
        click.echo("forget-customer: no order matches; nothing to erase")
        return
    if not dry_run and not yes:
        for order in orders:
            click.echo(_listed(order))
        click.confirm(f"Erase the customer's data from these {len(orders)} order(s)?", abort=True)
    ids = [order.id for order in orders]
    db.session.rollback()  # no transaction held while the operator read the list
    refused = 0
    for order_id in ids:
        order = db.session.get(Order, order_id)
        outcome = erase_customer_data(order, actor=ACTOR, dry_run=dry_run)
        refused += outcome.refused is not None
        click.echo(outcome.line(dry_run=dry_run))
    done = "would erase" if dry_run else "erased"
    click.echo(
        f"forget-customer: {done} {len(ids) - refused} order(s), refused {refused}"
        + (": run it again once each is settled" if refused else "")
    )
    if refused:
        raise SystemExit(1)


@click.command("export-customer")
@customer_options
@with_appcontext
def export_customer_command(phone: str | None, email: str | None):
    """Print, as JSON, everything bikshop holds about one customer (their right of access):
    their orders with items, addresses, tags, Bik's request, payments (with what Razorpay said
    of the payer), refunds and timeline. Nothing secret (no invoice token, no whole Razorpay
    payload). The JSON goes to stdout, one line per order and a
    summary to stderr."""
    from bikshop.services.privacy import customer_export, find_customer_orders

    orders = find_customer_orders(**_customer(phone, email))
    click.echo(json.dumps(customer_export(orders), indent=2, ensure_ascii=False))
    for order in orders:
        click.echo(f"{order.public_id} exported", err=True)
    click.echo(f"export-customer: {len(orders)} order(s)", err=True)
