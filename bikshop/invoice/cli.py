"""``flask --app bikshop issue-invoices``: tax invoices for orders that left without one."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from bikshop.services import invoices


@click.command("issue-invoices")
@click.option("--dry-run", is_flag=True, help="List the orders; issue nothing.")
@with_appcontext
def issue_invoices_command(dry_run: bool):
    """Number the tax invoice of every order shipped or delivered whose invoice nobody opened.

    Since 2026-12-07 shipping or delivering an order issues its tax invoice (CGST Act
    s. 31(1)(a)); an order that left before then, never opened, has none: run this once
    after upgrading past that release. Its invoice is dated today. Needs a GSTIN."""
    if not invoices.store().gstin:
        raise click.ClickException(
            "BIKSHOP_STORE_GSTIN is not set: this shop issues no tax invoices"
        )
    count = 0
    for count, order in enumerate(invoices.left_without_invoice(), start=1):  # noqa: B007
        if dry_run:
            click.echo(f"{order.public_id}: would be issued its tax invoice")
            continue
        invoices.issue_tax_invoice(order)
        click.echo(f"{order.public_id}: tax invoice {invoices.invoice_label(order.invoice_number)}")
    done = "would issue" if dry_run else "issued"
    click.echo(f"issue-invoices: {done} {count} tax invoice(s)")
