"""Operator commands under ``flask --app bikshop``; each lives beside what it operates."""

from __future__ import annotations

import click
from flask import Flask, current_app


def register(app: Flask) -> None:
    """Attach every bikshop command to the app's CLI."""
    from bikshop.admin.cli import commands as admin_commands
    from bikshop.checkbik import check_bik_command
    from bikshop.invoice.cli import issue_invoices_command
    from bikshop.ops import backup_command, prune_command, skip_numbers_command
    from bikshop.payments.cli import reconcile_payments_command
    from bikshop.privacy_cli import export_customer_command, forget_customer_command

    app.cli.add_command(check_bik_command)  # also a plugin command (setup.cfg): for test runners
    for command in (
        backup_command,
        prune_command,
        skip_numbers_command,
        reconcile_payments_command,
        issue_invoices_command,
        forget_customer_command,
        export_customer_command,
        *admin_commands,
        bik_setup_command,
    ):
        app.cli.add_command(_database_trouble_in_one_line(command))


def _database_trouble_in_one_line(command: click.Command) -> click.Command:
    """``command``, stopping with one line naming ``BIKSHOP_DATABASE_URL`` and why (the
    password never shown), exit 1, when the database cannot be reached or refuses the work
    (down, a wrong password, read-only, full), instead of a page of traceback: these run by
    hand, after a restore and from cron. A mistake of the command's own still shows whole.
    SQLite files this user cannot open exit 3, and a run as root on a SQLite database in
    another user's folder is warned of first (``sqlite_access``)."""
    from functools import wraps

    from flask.cli import ScriptInfo

    from bikshop.database import unavailable
    from bikshop.ops import database_error_line, database_refused
    from bikshop.sqlite_access import root_warning

    callback = command.callback
    if callback is None or getattr(callback, "_database_trouble_in_one_line", False):
        return command

    @wraps(callback)
    def run(*args, **kwargs):
        app = click.get_current_context().ensure_object(ScriptInfo).load_app()
        url = app.config["SQLALCHEMY_DATABASE_URI"]
        if warning := root_warning(url):
            click.echo(warning, err=True)
        try:
            return callback(*args, **kwargs)
        except Exception as exc:
            if not unavailable(exc):
                raise
            reason = database_error_line(exc, url)
            raise database_refused(
                f"{command.name} stopped: the database at BIKSHOP_DATABASE_URL refused: {reason}",
                exc,
                url,
            ) from None

    run._database_trouble_in_one_line = True
    command.callback = run
    return command


@click.command("bik-setup")
@click.option(
    "--base-url",
    help="Where Bik reaches this server (default BIKSHOP_PUBLIC_URL, else BIKSHOP_BIND).",
)
def bik_setup_command(base_url):
    """Print what to enter in Bik's Non-Shopify Onboarding screen: URLs and credentials.

    Without --base-url or BIKSHOP_PUBLIC_URL the URLs are those BIKSHOP_BIND answers on; a
    unix socket has none, and then the paths are shown after a placeholder, with what to set.
    """
    from bikshop.checkbik import server_url_param
    from bikshop.config import ConfigError, NoURLKnown
    from bikshop.config import base_url as configured_base_url

    config = current_app.config
    unknown = None
    if base_url is not None:
        base = server_url_param(base_url, "--base-url")
    else:
        try:
            base = configured_base_url(config["PUBLIC_URL"], config.get("BIND"))
        except NoURLKnown as exc:
            base, unknown = NO_URL_PLACEHOLDER, exc.message
        except ConfigError as exc:
            raise click.UsageError(str(exc))
    specs = config["BIK_AUTH_SPECS"]
    click.echo("Register these in Bik (BIK Labs > Non-Shopify Onboarding):")
    if unknown:
        click.echo(f"  ({unknown}, or pass --base-url; {NO_URL_PLACEHOLDER} stands for it below.)")
    for name in ("placeOrder", "getOrder"):
        click.echo(f"  {name:<10} POST {base}/bik/{name}")
        click.echo(f"  {'':<10} auth: {specs[name].describe()}")
    if not unknown and not base.lower().startswith("https://"):
        click.echo("  (Bik needs a public https URL: set BIKSHOP_PUBLIC_URL when deployed.)")


# Shown instead of a URL when none is known: plainly not one, so nobody registers it in Bik.
NO_URL_PLACEHOLDER = "<your https address>"
