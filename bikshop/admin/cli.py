"""Operator commands for dashboard accounts: create, list, disable, set a password."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from bikshop.admin.display import local_time
from bikshop.services import admins


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line from a script or a secrets manager; the trailing newline is not part of it.
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _fail(error: admins.AccountError):
    raise click.ClickException(str(error))


password_stdin = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)


@click.command("create-admin")
@with_appcontext
@click.argument("email")
@password_stdin
def create_admin_command(email, password_stdin):
    """Create a dashboard account (the password is prompted, or read with --password-stdin)."""
    try:
        admin = admins.create_admin(email, _read_password(password_stdin))
    except admins.AccountError as exc:
        _fail(exc)
    click.echo(f"Created admin {admin.email}")


@click.command("list-admins")
@with_appcontext
def list_admins_command():
    """List dashboard accounts: email, active or disabled, last sign-in."""
    accounts = admins.list_admins()
    if not accounts:
        click.echo("No admins yet: flask --app bikshop create-admin EMAIL")
    for admin in accounts:
        state = "active" if admin.active else "disabled"
        last = local_time(admin.last_login_at) if admin.last_login_at else "never signed in"
        click.echo(f"{admin.email}\t{state}\t{last}")


@click.command("disable-admin")
@with_appcontext
@click.argument("email")
@click.option("--enable", is_flag=True, help="Enable the account again instead.")
def disable_admin_command(email, enable):
    """Disable a dashboard account: it cannot sign in and its sessions end at once."""
    try:
        admin = admins.set_active(email, active=enable)
    except admins.AccountError as exc:
        _fail(exc)
    click.echo(f"{'Enabled' if enable else 'Disabled'} admin {admin.email}")


@click.command("set-admin-password")
@with_appcontext
@click.argument("email")
@password_stdin
def set_admin_password_command(email, password_stdin):
    """Give a dashboard account a new password; sessions with the old one end."""
    try:
        admin = admins.set_password(email, _read_password(password_stdin))
    except admins.AccountError as exc:
        _fail(exc)
    click.echo(f"New password set for {admin.email}")


commands = [
    create_admin_command,
    list_admins_command,
    disable_admin_command,
    set_admin_password_command,
]
