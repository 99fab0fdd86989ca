"""``flask --app bikshop reconcile-payments``: the cron backstop for lost webhooks."""

from __future__ import annotations

from datetime import timedelta

import click
from flask.cli import with_appcontext

from bikshop import razorpay_client
from bikshop.services import payments


@click.command("reconcile-payments")
@click.option(
    "--older-than",
    type=click.IntRange(min=0),
    default=15,
    show_default=True,
    help="Only links made at least this many minutes ago (younger ones await their webhook).",
)
@with_appcontext
def reconcile_payments_command(older_than: int):
    """Ask Razorpay about every unpaid link of a pending order and apply what it says; cancel
    any link left open on an order that is paid, refunded or cancelled.

    Safe to run from cron while webhooks arrive; exits 1 if Razorpay could not be asked
    about some link (they are tried again next run).
    """
    if not razorpay_client.is_configured():
        click.echo("Razorpay keys are not set (BIKSHOP_RAZORPAY_KEY_ID): nothing to reconcile.")
        return
    report = payments.reconcile(older_than=timedelta(minutes=older_than))
    for line in report.outcomes:
        click.echo(line)
    for line in report.failures:
        click.echo(f"failed: {line}", err=True)
    click.echo(f"checked {report.checked} link(s), {len(report.failures)} failed")
    if report.failures:
        raise SystemExit(1)
