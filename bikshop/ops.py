"""Operator commands: ``check-config`` (is this safe to run in production?), ``backup`` and
``prune`` (old webhook deliveries and expired admin sessions; with
``--personal-data-after``, customers' personal data past the retention period).

``check-config`` is registered as a Flask CLI plugin (setup.cfg, ``flask.commands``) so that
``flask --app bikshop check-config`` still runs, and explains, when the settings are so broken
that the app itself refuses to start.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import delete, func, inspect, select, text
from sqlalchemy.engine import make_url

from bikshop.database import (
    NOT_MIGRATED_HINT,
    UPGRADE_COMMAND,
    migration_fix,
    missing_table_error,
)
from bikshop.sqlite_access import DatabaseFilesError, access_problem, files_problem


@dataclass
class Finding:
    """One line of ``check-config``: ``error`` blocks a production start, ``warning`` advises."""

    level: str
    variable: str
    message: str


def check(environ: dict[str, str] | None = None, *, connect: bool = True) -> list[Finding]:
    """Everything unsafe or missing for production in ``environ`` (default: the process's)."""
    from bikshop import ConfigError, create_app
    from bikshop.database import dispose_engines

    environ = dict(os.environ if environ is None else environ)
    raw = {k.removeprefix("BIKSHOP_"): v for k, v in environ.items() if k.startswith("BIKSHOP_")}
    server = _gunicorn_findings(raw)
    try:
        app = create_app(raw)
    except ConfigError as exc:  # every problem, not only the first the app stopped at
        return [
            Finding("error", _variable_of(problem), f"the app refuses to start: {problem}")
            for problem in exc.problems
        ] + server
    found = _settings_findings(app.config) + _folder_findings(app.config) + server
    found += unknown_name_findings(environ)
    found += _password_encoding_findings(app.config)
    in_memory = in_memory_finding(app.config)
    if in_memory:
        found.append(in_memory)
    elif connect:
        with app.app_context():
            try:
                database = _database_findings(app)
                found += database or _webhook_findings()
            finally:
                dispose_engines()  # its connections closed now, not when the app is collected
    if connect:
        found += _redis_findings(app.config)
        with app.app_context():
            found += _razorpay_findings()
    return found


def _razorpay_findings() -> list[Finding]:
    """Keys Razorpay refuses (a character mistyped) passed every check, and the first
    customer to tap Pay was told to pay on delivery (self-hoster probe): one call that changes
    nothing tells."""
    from bikshop import razorpay_client

    if not razorpay_client.is_configured():
        return []
    try:
        razorpay_client.check_keys()
    except razorpay_client.RazorpayRejected as exc:
        return [
            Finding(
                "error",
                "BIKSHOP_RAZORPAY_KEY_SECRET",
                f"Razorpay refused the keys (with BIKSHOP_RAZORPAY_KEY_ID): {exc}; copy both "
                "from Razorpay's dashboard (Account & Settings, API keys) for the same mode",
            )
        ]
    except razorpay_client.RazorpayUnavailable as exc:
        return [
            Finding(
                "warning",
                "BIKSHOP_RAZORPAY_API_URL",
                f"Razorpay could not be asked whether it takes the keys: {exc}",
            )
        ]
    return []


def _gunicorn_checks() -> dict:
    """The settings gunicorn.conf.py reads (the app never sees them), each with its check."""
    from bikshop.config import bind_address, proxy_addresses, whole_number

    numbers = {
        name: lambda value, name=name: whole_number(name, value)
        for name in ("WORKERS", "TIMEOUT", "MAX_REQUESTS")
    }
    return {"BIND": bind_address, "FORWARDED_ALLOW_IPS": proxy_addresses} | numbers


def _gunicorn_findings(raw: dict[str, str]) -> list[Finding]:
    """The settings gunicorn.conf.py reads, which the app never sees: gunicorn would stop."""
    from bikshop.config import ConfigError

    found = []
    for name, read in _gunicorn_checks().items():
        if raw.get(name):
            try:
                read(raw[name])
            except ConfigError as exc:
                found.append(
                    Finding("error", f"BIKSHOP_{name}", f"gunicorn refuses to start: {exc}")
                )
    return found


# Read by the test suite and benchmarks, not by bikshop.
_TOOLING_PREFIXES = ("TEST", "BENCH_", "FAULT_", "RATELIMIT_KEY_PREFIX")


def unknown_name_findings(environ) -> list[Finding]:
    """A ``BIKSHOP_`` name in ``environ`` that nothing reads is most likely a misspelt one
    (``DATABASE_URI``), and a misspelt setting is silently its default: say so, with the name it
    was probably meant as (names only, never values). check-config and wsgi.py both say it."""
    from bikshop.config import DEFAULTS

    known = set(DEFAULTS) | set(_gunicorn_checks())
    given = {name.removeprefix("BIKSHOP_") for name in environ if name.startswith("BIKSHOP_")}
    found = []
    for name in sorted(given - known):
        if name.startswith(_TOOLING_PREFIXES):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        meant = f": did you mean BIKSHOP_{close[0]}?" if close else ""
        found.append(
            Finding(
                "warning", f"BIKSHOP_{name}", f"is not a bikshop setting, and is ignored{meant}"
            )
        )
    return found


def _variable_of(problem: str) -> str:
    return problem.split()[0] if problem.startswith("BIKSHOP_") else "BIKSHOP_*"


# The limits on by default, and what each one guards (check-config warns when one is off).
_GUARDING_LIMITS = {
    "LOGIN": "sign-in attempts",
    "INVOICE": "invoice page loads",
    "INVOICE_MISSES": "invoice link guesses",
    "PAY": "Pay taps",
}


def _bik_auth_by_setting(config) -> dict[str, tuple]:
    """Each setting that holds a Bik endpoint's auth (``BIK_AUTH`` or an override), with its
    spec and what that auth guards, so a finding names the variable to change."""
    from bikshop.bik.auth import OPEN_TO
    from bikshop.config import bik_auth_key

    found: dict[str, tuple] = {}
    for endpoint, spec in config["BIK_AUTH_SPECS"].items():
        key = bik_auth_key(config, endpoint)
        exposed = OPEN_TO[endpoint]
        found[key] = (spec, f"{found[key][1]} and {exposed}" if key in found else exposed)
    return found


def _settings_findings(config) -> list[Finding]:
    found: list[Finding] = []

    def add(level, key, message):
        found.append(Finding(level, f"BIKSHOP_{key}", message))

    if config["ENV"] != "production":
        add("error", "ENV", "is development: debug pages and throwaway secrets; use production")
    bik_auth = _bik_auth_by_setting(config)
    for key, (spec, exposed) in bik_auth.items():
        if spec.scheme == "none":
            add("error", key, f"is none: anyone who finds the URL can {exposed}")
    if not config["PUBLIC_URL"]:
        add("error", "PUBLIC_URL", "is not set: invoice links would trust the Host header")
    elif not config["PUBLIC_URL"].startswith("https://"):
        add("error", "PUBLIC_URL", "is not https: Bik and Razorpay need https links")
    if config["INSECURE_COOKIES"]:
        add("error", "INSECURE_COOKIES", "is on: the admin session cookie would travel over http")
    if not config["RAZORPAY_KEY_ID"]:
        add("warning", "RAZORPAY_KEY_ID", "is not set: invoices offer no online payment")
    elif config["RAZORPAY_KEY_ID"].startswith("rzp_test_"):
        add("warning", "RAZORPAY_KEY_ID", "is a test-mode key: no real money is collected")
    if len(config["SECRET_KEY"] or "") < 32:
        add("warning", "SECRET_KEY", "is shorter than 32 characters")
    if not config["RATELIMIT_ENABLED"]:
        add(
            "warning",
            "RATELIMIT_ENABLED",
            "is off: nothing limits sign-in attempts, invoice link guesses or Pay taps",
        )
    else:
        for key, what in _GUARDING_LIMITS.items():
            if not config[f"RATELIMIT_{key}"]:
                add("warning", f"RATELIMIT_{key}", f"is off: nothing limits {what}")
        if not config["REDIS_URL"]:
            add(
                "warning", "REDIS_URL", "is not set: each gunicorn worker keeps its own rate limits"
            )
    if not config["TRUSTED_HOSTS"]:
        add("warning", "TRUSTED_HOSTS", "is not set: any Host header is accepted")
    public_host = urlsplit(config["PUBLIC_URL"] or "").netloc.lower()
    if public_host and config["TRUSTED_HOSTS"]:
        from werkzeug.sansio.utils import host_is_trusted

        if not host_is_trusted(public_host, config["TRUSTED_HOSTS"]):
            add(
                "error",
                "TRUSTED_HOSTS",
                f"does not hold {public_host}, BIKSHOP_PUBLIC_URL's host: every request to it "
                "(Bik's calls, customers' invoices) would be refused with a 400",
            )
    if public_host.rsplit(":", 1)[0].endswith("example.com"):
        add(
            "error",
            "PUBLIC_URL",
            f"is still the example's ({public_host}): set the address your shop is served at",
        )
    if not config["PROXY_FIX_X_FOR"]:
        add(
            "warning",
            "PROXY_FIX_X_FOR",
            "is 0: behind nginx set 1, or every client shares one rate limit",
        )
    for key, (spec, exposed) in bik_auth.items():
        if spec.scheme != "none" and len(spec.password or spec.token) < MIN_BIK_SECRET:
            secret = "password" if spec.scheme == "basic" else "token"
            add(
                "warning",
                key,
                f"the {spec.scheme} {secret} is shorter than {MIN_BIK_SECRET} characters: "
                f"anyone who guesses it can {exposed}",
            )
    if config["STORE_NAME"] == "Your Store":
        add("warning", "STORE_NAME", "is the placeholder: customers see it on invoices")
    if not config["STORE_ADDRESS"]:
        if config["STORE_GSTIN"]:
            add(
                "error", "STORE_ADDRESS", "is not set: a tax invoice must show the seller's address"
            )
        else:
            add("warning", "STORE_ADDRESS", "is not set: invoices show no seller address")
    if not config["METRICS_TOKEN"]:
        add("warning", "METRICS_TOKEN", "is not set: /metrics is off")
    # Secrets that guard something: long enough that guessing them is hopeless.
    guarded = {
        "METRICS_TOKEN": "anyone who guesses it can read the shop's figures",
        "RAZORPAY_WEBHOOK_SECRET": "anyone who guesses it can mark orders paid",
    }
    for key, risk in guarded.items():
        if config[key] and len(config[key]) < MIN_BIK_SECRET:
            add("warning", key, f"is shorter than {MIN_BIK_SECRET} characters: {risk}")
    key_id = config["RAZORPAY_KEY_ID"]
    if key_id and not key_id.startswith(("rzp_test_", "rzp_live_")):
        add(
            "warning", "RAZORPAY_KEY_ID", "does not start with rzp_test_ or rzp_live_: not a key id"
        )
    return found


# Bik's credential guards orders and customers' details: long enough that guessing is hopeless.
MIN_BIK_SECRET = 16


def _folder_findings(config) -> list[Finding]:
    """Folders bikshop writes while serving: a cache it cannot write fails only later."""
    folder = config["PDF_CACHE_DIR"]
    try:  # by trying: permission bits do not tell for root, read-only mounts or /proc
        os.makedirs(folder, mode=0o700, exist_ok=True)  # as the cache itself would on first use
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return [
            Finding(
                "error",
                "BIKSHOP_PDF_CACHE_DIR",
                f"{folder} is not writable by this user ({exc.strerror}): "
                "every PDF download would be rendered again",
            )
        ]
    return []


_NOT_MIGRATED = f"not migrated yet: run {UPGRADE_COMMAND}"


def _password_encoding_findings(config) -> list[Finding]:
    """A password bikshop connects with, but pg_dump and pg_restore (the README's restore)
    would read otherwise: said now, not in the middle of a restore."""
    from bikshop.config import PERCENT_ENCODED, unencoded_in_password

    unencoded = unencoded_in_password(config["DATABASE_URL"])
    if not unencoded:
        return []
    written = ", ".join(f"{char} as {PERCENT_ENCODED[char]}" for char in unencoded)
    return [
        Finding(
            "warning",
            "BIKSHOP_DATABASE_URL",
            f"has {' and '.join(unencoded)} in its password not percent-encoded: bikshop "
            f"connects, but pg_dump and pg_restore cannot read the URL; write {written}",
        )
    ]


def in_memory_finding(config) -> Finding | None:
    """SQLite's in-memory database, found without connecting (``--offline`` too)."""
    url = make_url(config["SQLALCHEMY_DATABASE_URI"])
    database = url.database or ""
    # SQLite's URI form too: file::memory:?cache=shared, file:name?mode=memory.
    uri_in_memory = database.startswith("file:") and (
        database.startswith("file::memory:") or url.query.get("mode") == "memory"
    )
    if url.get_backend_name() == "sqlite" and (database in ("", ":memory:") or uri_in_memory):
        return Finding(
            "error",
            "BIKSHOP_DATABASE_URL",
            "is an in-memory SQLite database: each worker would have its own, emptied at "
            "every restart; use sqlite:////absolute/path.sqlite3",
        )
    return None


def _database_findings(app: Flask) -> list[Finding]:
    from bikshop.database import dispose_engines
    from bikshop.extensions import db

    head = app.extensions["bikshop.migration_head"]
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite" and url.database and not os.path.exists(url.database):
        folder = os.path.dirname(url.database)
        if not os.path.isdir(folder):
            return [Finding("error", "BIKSHOP_DATABASE_URL", f"its folder {folder} does not exist")]
        # Connecting would create an empty file; db upgrade makes it with the schema.
        return [Finding("error", "BIKSHOP_DATABASE_URL", _NOT_MIGRATED)]
    try:
        if not inspect(db.engine).has_table("alembic_version"):
            return [Finding("error", "BIKSHOP_DATABASE_URL", _NOT_MIGRATED)]
        current = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as exc:  # any driver error: say which, never the URL
        reason = database_error_line(exc, app.config["SQLALCHEMY_DATABASE_URI"])
        return [Finding("error", "BIKSHOP_DATABASE_URL", f"cannot read the schema: {reason}")]
    finally:
        db.session.remove()
        dispose_engines()
    if current != head:
        return [
            Finding(
                "error",
                "BIKSHOP_DATABASE_URL",
                f"schema is at {current}, the code needs {head}; "
                + migration_fix(current, app.extensions["bikshop.migration_revisions"]),
            )
        ]
    return []


def _webhook_findings() -> list[Finding]:
    """Razorpay's deliveries refused for their signature lately, none accepted since: the
    webhook secret is not the one set in Razorpay's dashboard (the orders page says so too)."""
    from bikshop.extensions import db
    from bikshop.services.webhooks import signature_trouble

    try:
        trouble = signature_trouble()
    finally:
        db.session.remove()
    if trouble is None:
        return []
    since = trouble.since.strftime("%Y-%m-%d %H:%M UTC")
    return [
        Finding(
            "warning",  # unsigned evidence: anyone can post such a body
            "BIKSHOP_RAZORPAY_WEBHOOK_SECRET",
            f"refused {trouble.refused} webhook deliver{'y' if trouble.refused == 1 else 'ies'} "
            f"shaped like Razorpay's since "
            f"{since} for their signature, and accepted none since: if they came from "
            "Razorpay, this is not the secret of the webhook in Razorpay's dashboard "
            "(payments then reach orders only through reconcile-payments)",
        )
    ]


def database_error_line(exc: BaseException, url: str, *, migrating: bool = False) -> str:
    """One line saying why the database refused (the driver's first line: "Connection
    refused", "database ... does not exist", "password authentication failed ..."), with the
    URL's password never in it; for a table not there, that the database needs ``db upgrade``
    (unless this is ``db upgrade``: ``migrating``)."""
    error = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    line = lines[0] if lines else type(error).__name__
    line = line.removeprefix("connection failed: ")
    password = make_url(url).password
    if password:
        # Whole only: a password "x" masked every x ("does not e[secret]ist", self-hoster probe).
        alone = rf"(?<![A-Za-z0-9]){re.escape(str(password))}(?![A-Za-z0-9])"
        line = re.sub(alone, "[secret]", line)
    if not migrating and missing_table_error(error):
        return f"{line} ({type(error).__name__}; {NOT_MIGRATED_HINT})"
    # SQLite's bare "unable to open database file": whose files, what mode, who runs this, and
    # the chown that fixes it (a db upgrade run as root made them root's: self-hoster probe).
    if files := access_problem(error, url):
        return f"{line} ({type(error).__name__}): {files}"
    return f"{line} ({type(error).__name__})"


def database_refused(message: str, exc: BaseException, url: str) -> click.ClickException:
    """A command's one-line stop for the database refusing ``exc``: exit 1 (worth trying
    again: a database down or starting), or 3 for SQLite files this user cannot open (not
    until their owner changes), as for a setting bikshop refuses."""
    if access_problem(exc, url, unopened=True):
        return DatabaseFilesError(message)
    return click.ClickException(message)


def _redis_findings(config) -> list[Finding]:
    if not config["REDIS_URL"]:
        return []
    import redis

    # limits writes a socket as redis+unix://, the redis client as unix://.
    url = config["REDIS_URL"].replace("redis+unix://", "unix://", 1)
    try:
        redis.Redis.from_url(url, socket_timeout=3).ping()
    except redis.RedisError as exc:
        return [Finding("error", "BIKSHOP_REDIS_URL", f"does not answer ({type(exc).__name__})")]
    return []


@click.command("check-config")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option("--offline", is_flag=True, help="Do not connect to the database, Redis or Razorpay.")
def check_config_command(strict: bool, offline: bool):
    """List unsafe or missing production settings; exit 1 if any would hurt."""
    found = check(connect=not offline)
    for finding in found:
        click.echo(f"{finding.level.upper():<8}{finding.variable} {finding.message}")
    errors = [f for f in found if f.level == "error"]
    warnings = [f for f in found if f.level == "warning"]
    click.echo(f"check-config: {len(errors)} error(s), {len(warnings)} warning(s)")
    if errors or (strict and warnings):
        raise SystemExit(1)


@click.command("backup")
@click.argument("destination", type=click.Path(dir_okay=False, writable=True))
@with_appcontext
def backup_command(destination: str):
    """Copy the live database to DESTINATION while bikshop keeps serving."""
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    target = Path(destination)
    if target.exists():
        raise click.ClickException(f"{target} exists; choose a new file name")
    folder = target.parent
    if not folder.is_dir():
        raise click.ClickException(
            f"folder {folder} does not exist: create it first (install -d -m 700 {folder})"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.ClickException(f"folder {folder} is not writable by this user")
    try:
        if url.get_backend_name() == "sqlite":
            if not url.database or not os.path.isfile(url.database):
                raise click.ClickException(f"no database at {url.database}: nothing to back up")
            orders = backup_sqlite(url.database, target)
            click.echo(f"backup: {target} ({orders} orders, integrity ok)")
        elif url.get_backend_name() == "postgresql":
            backup_postgresql(url, target)
            click.echo(f"backup: {target} (pg_dump custom format; restore with pg_restore)")
        else:
            raise click.ClickException(f"backup does not know {url.get_backend_name()} databases")
    except OSError as exc:  # the folder full (of data or inodes), read-only, gone meanwhile
        raise click.ClickException(
            f"backup failed: cannot write {exc.filename or folder}: {exc.strerror or exc}"
        )


def backup_sqlite(source: str, target: Path) -> int:
    """SQLite's online backup API (readers and writers keep going), then verify the copy."""
    src = None
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
        src.execute("SELECT 1 FROM sqlite_master LIMIT 1")  # opens the file: can this user read it?
    except sqlite3.Error as exc:  # a traceback before; now why, and what to run
        if src is not None:
            src.close()
        files = files_problem(os.path.abspath(source))
        error = DatabaseFilesError if files else click.ClickException
        raise error(f"backup failed: {exc}" + (f": {files}" if files else "")) from None
    partial = _private_file(target.with_name(target.name + ".partial"))
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst, pages=1024)  # in steps, so writers are never blocked for long
        if dst.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise click.ClickException("the copy failed its integrity check")
        orders = dst.execute("SELECT count(*) FROM orders").fetchone()[0]
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise click.ClickException(f"backup failed: {exc}")
    finally:
        src.close()
        dst.close()
    partial.rename(target)  # a half-written backup never carries the final name
    return orders


def backup_postgresql(url, target: Path) -> None:
    """``pg_dump --format=custom``: a consistent snapshot taken without stopping writers."""
    if shutil.which("pg_dump") is None:
        raise click.ClickException("pg_dump is not installed (Debian: postgresql-client)")
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    plain = url.set(drivername="postgresql", password=None)
    partial = _private_file(target.with_name(target.name + ".partial"))
    result = subprocess.run(
        [
            "pg_dump",
            "--format=custom",
            "--no-owner",
            f"--file={partial}",
            plain.render_as_string(hide_password=False),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        partial.unlink(missing_ok=True)
        raise click.ClickException(f"pg_dump failed: {result.stderr.strip()}")
    partial.rename(target)


def _private_file(path: Path) -> Path:
    """``path`` created empty, mode 600 whatever the umask: a backup holds customers' data."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an older .partial left by a failed run keeps its own mode
    os.close(descriptor)
    return path


# ``prune``: what grows without bound and is never read again.
PRUNE_DAYS = 90  # a quarter: time enough to look into a delivery after the fact
MAX_PRUNE_DAYS = 36500
PRUNE_BATCH = 1000
_BETWEEN_BATCHES = 0.01  # seconds: a writer queued behind one batch takes its turn


@dataclass
class PruneReport:
    """What ``prune`` deleted (or, in a dry run, would delete), and the old claims it kept."""

    webhook_events: int = 0
    claims_kept: int = 0
    admin_sessions: int = 0
    login_failures: int = 0


def prune(
    report: PruneReport,
    *,
    older_than: timedelta,
    batch_size: int = PRUNE_BATCH,
    dry_run: bool = False,
) -> PruneReport:
    """Delete webhook deliveries received more than ``older_than`` ago that hold no claim
    (``webhooks.prunable``), admin sessions past their lifetime (``admins.expired_sessions``) and
    failed sign-ins older than the lock window (``admins.stale_login_failures``).

    In batches of ``batch_size`` rows, each its own transaction (on SQLite under the writer lock
    placeOrder takes turns on), so no lock is held for long. Counts go into ``report`` batch by
    batch: when the database refuses (SQLAlchemyError, raised), it holds what was deleted."""
    from bikshop.models import AdminSession, WebhookEvent
    from bikshop.models.admin import LoginFailure
    from bikshop.models.types import utcnow
    from bikshop.services.admins import expired_sessions, stale_login_failures
    from bikshop.services.webhooks import claimed, prunable

    before = utcnow() - older_than
    report.claims_kept = _count(WebhookEvent, claimed(before))
    if dry_run:
        report.webhook_events = _count(WebhookEvent, prunable(before))
        report.admin_sessions = _count(AdminSession, expired_sessions())
        report.login_failures = _count(LoginFailure, stale_login_failures())
        return report
    for deleted in _delete_in_batches(WebhookEvent, prunable(before), batch_size):
        report.webhook_events += deleted
    for deleted in _delete_in_batches(AdminSession, expired_sessions(), batch_size):
        report.admin_sessions += deleted
    for deleted in _delete_in_batches(LoginFailure, stale_login_failures(), batch_size):
        report.login_failures += deleted
    return report


def _count(model, where) -> int:
    from bikshop.extensions import db

    with db.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(model).where(where)).scalar()


def _delete_in_batches(model, where, batch_size: int) -> Iterator[int]:
    """Delete ``model``'s rows matching ``where``, ``batch_size`` at a time, committing each
    batch; yields each batch's count. Ends at the first short batch: rows matching ``where`` only
    get fewer (its cutoff is fixed), so a busy table cannot keep it going."""
    from bikshop.database import sqlite_writer
    from bikshop.extensions import db

    table = model.__table__
    chosen = select(table.c.id).where(where).limit(batch_size).scalar_subquery()
    statement = delete(table).where(table.c.id.in_(chosen))
    engine = db.engine
    while True:
        with engine.connect() as connection, sqlite_writer(engine, connection), connection.begin():
            deleted = connection.execute(statement).rowcount
        yield deleted
        if deleted < batch_size:
            return
        time.sleep(_BETWEEN_BATCHES)


@click.command("skip-numbers")
@click.option(
    "--by",
    type=click.IntRange(1, 1_000_000),
    default=10_000,
    show_default=True,
    help="How far to move each counter on.",
)
@with_appcontext
def skip_numbers_command(by: int):
    """Move the order and tax-invoice counters on, after restoring a backup.

    A restored database numbers from where the backup stopped, but the orders placed after the
    backup are still known to Bik (and their tax invoices to customers) by their numbers: the
    next orders would reuse them, and Bik's getOrder for a lost ORD-1004 would show another
    customer's order. Run this once, before serving, to skip past every number given out since.
    """
    from bikshop.extensions import db
    from bikshop.models.orders import Counter

    counters = db.session.scalars(select(Counter).order_by(Counter.name)).all()
    for counter in counters:
        counter.value += by
    db.session.commit()
    if not counters:
        click.echo("skip-numbers: nothing numbered yet; the first numbers are the configured ones")
    for counter in counters:
        click.echo(f"skip-numbers: the next {counter.name} number is {counter.value + 1}")


@click.command("prune")
@click.option(
    "--older-than",
    type=click.IntRange(min=1, max=MAX_PRUNE_DAYS),
    default=PRUNE_DAYS,
    show_default=True,
    metavar="DAYS",
    help="Delete webhook deliveries received more than this many days ago.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=100_000),
    default=PRUNE_BATCH,
    show_default=True,
    help="Rows deleted per transaction (each commits before the next begins).",
)
@click.option(
    "--personal-data-after",
    type=click.IntRange(min=1, max=MAX_PRUNE_DAYS),
    metavar="DAYS",
    help="Also erase the customer's personal data from orders final (delivered, cancelled or "
    "refunded) and unchanged for more than DAYS days, as forget-customer does. Off unless given.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@with_appcontext
def prune_command(older_than: int, batch_size: int, personal_data_after: int | None, dry_run: bool):
    """Delete old webhook deliveries, expired admin sessions and stale failed sign-ins, in
    short batches.

    Every Razorpay webhook delivery is stored, also the unsigned ones anybody can send. Those
    received more than --older-than days ago go, except each delivery that claimed its Razorpay
    event id: that row is what makes a redelivery of the event a duplicate, so it stays however
    old (one or a few per order) and no event can be applied twice. The rejected, duplicate,
    malformed and deferred deliveries go; nothing reads them again.

    Admin sessions past their 30-day lifetime go too (they sign nobody in any more), and
    failed sign-ins older than the lock window (they lock nothing any more).

    With --personal-data-after DAYS, the customer's personal data goes from every order final
    (delivered, cancelled or refunded in full) and unchanged for more than DAYS days, as
    forget-customer erases it (one line per order; one refused, saying why, exits 1).

    Safe to run from cron while bikshop serves. Exit 1 if the database refused: what was
    deleted stays deleted, and the next run goes on.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from bikshop.services.admins import SESSION_LIFETIME

    would = "would delete" if dry_run else "deleted"
    report = PruneReport()
    try:
        prune(report, older_than=timedelta(days=older_than), batch_size=batch_size, dry_run=dry_run)
    except SQLAlchemyError as exc:
        url = current_app.config["SQLALCHEMY_DATABASE_URI"]
        raise database_refused(
            f"prune stopped: {database_error_line(exc, url)}; deleted {report.webhook_events} "
            f"webhook event(s), {report.admin_sessions} admin session(s) and "
            f"{report.login_failures} failed sign-in(s) before it",
            exc,
            url,
        )
    click.echo(f"{would} {report.webhook_events} webhook event(s) older than {older_than} days")
    click.echo(
        f"kept {report.claims_kept} older webhook event(s) that claimed a Razorpay event id "
        "(redeliveries of those events stay duplicates)"
    )
    click.echo(
        f"{would} {report.admin_sessions} admin session(s) past their "
        f"{SESSION_LIFETIME.days}-day lifetime"
    )
    click.echo(
        f"{would} {report.login_failures} failed sign-in(s) older than the "
        f"{current_app.config['ADMIN_LOGIN_LOCK_MINUTES']}-minute lock window"
    )
    if personal_data_after is not None:
        erased, refused = erase_past_retention(personal_data_after, batch_size, dry_run=dry_run)
        click.echo(
            f"{'would erase' if dry_run else 'erased'} the customer data of {erased} order(s) "
            f"final for more than {personal_data_after} days, refused {refused}"
        )
        if refused:
            raise SystemExit(1)


def erase_past_retention(days: int, batch_size: int, *, dry_run: bool) -> tuple[int, int]:
    """Erase the customer data of every order final and unchanged for more than ``days`` days
    (``privacy.past_retention``), each in its own transaction, printing one line per order;
    returns (erased, refused). In id order, so a refused order is passed over, not retried."""
    from bikshop.services.privacy import erase_customer_data, past_retention

    erased = refused = 0
    after_id = 0
    reason = f"after the {days}-day retention period"
    while True:
        batch = past_retention(days, after_id=after_id, limit=batch_size)
        ids = [order.id for order in batch]
        for order in batch:
            outcome = erase_customer_data(order, actor="cli", reason=reason, dry_run=dry_run)
            # A refusal on stderr: cron mails it, while the scheduled job's stdout is dropped.
            click.echo(outcome.line(dry_run=dry_run), err=outcome.refused is not None)
            refused += outcome.refused is not None
            erased += outcome.refused is None
        if len(ids) < batch_size:
            return erased, refused
        after_id = ids[-1]
