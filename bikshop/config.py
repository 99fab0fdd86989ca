"""Configuration: coded defaults, then ``BIKSHOP_*`` environment variables, then a test mapping."""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import os
import re
from decimal import Decimal
from urllib.parse import urlsplit

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bikshop.bik.auth import AuthSpecError, parse_auth_spec
from bikshop.money import is_currency_code


class ConfigError(click.ClickException):
    """A setting is missing or unsafe; the message is one line naming the variable. A
    ClickException, so ``flask --app bikshop <command>`` prints that line, not a traceback.

    ``problems`` holds every problem found (the first is the message), so that check-config
    lists them all at once instead of one per run.
    """

    # As wsgi.py and gunicorn.conf.py exit: 3 tells systemd (RestartPreventExitStatus=3) that
    # restarting will not help, also when the unit's `flask db upgrade` is what found it.
    exit_code = 3

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = problems or [message]
        if len(self.problems) > 1:
            message += f" (and {len(self.problems) - 1} more: flask --app bikshop check-config)"
        super().__init__(message)


class _Problems:
    """Collects the ConfigError of each independent check, so that one bad setting does not
    hide the next; raises them together at the end."""

    def __init__(self):
        self.found: list[str] = []

    @contextlib.contextmanager
    def check(self):
        try:
            yield
        except ConfigError as exc:
            self.found.extend(exc.problems)

    def raise_any(self) -> None:
        if self.found:
            raise ConfigError(self.found[0], self.found)


# Every setting bikshop reads, with its default. Keys are the names after the ``BIKSHOP_`` prefix.
DEFAULTS: dict[str, object] = {
    "ENV": "production",
    "SECRET_KEY": None,
    "DATABASE_URL": None,  # None means sqlite:///<instance>/bikshop.sqlite3
    "DATABASE_PING_AFTER_IDLE": 10,  # seconds a pooled connection may idle before a ping
    "PUBLIC_URL": None,
    "BIK_AUTH": None,
    "BIK_PLACE_ORDER_AUTH": None,
    "BIK_GET_ORDER_AUTH": None,
    "CURRENCY": "INR",
    "ORDER_ID_PREFIX": "ORD-",
    "ORDER_NUMBER_START": 1001,
    "MAX_ITEMS_PER_ORDER": 500,
    "STORE_NAME": "Your Store",
    "STORE_LEGAL_NAME": None,
    "STORE_ADDRESS": None,  # none shown: a placeholder would reach customers' invoices
    "STORE_STATE": None,
    "STORE_LOGO_URL": None,
    "STORE_SUPPORT_PHONE": None,
    "STORE_SUPPORT_EMAIL": None,
    "STORE_GSTIN": None,
    "STORE_HSN_CODE": None,
    "STORE_GST_RATE": "18",
    "STORE_LOCALE": "en_IN",
    "STORE_TIMEZONE": "Asia/Kolkata",
    "PDF_CACHE_DIR": None,  # None means <instance>/invoice-pdfs
    "RAZORPAY_KEY_ID": None,
    "RAZORPAY_KEY_SECRET": None,
    "RAZORPAY_WEBHOOK_SECRET": None,
    "RAZORPAY_WEBHOOK_SECRET_PREVIOUS": None,
    "RAZORPAY_API_URL": "https://api.razorpay.com",
    "RAZORPAY_TIMEOUT": 10,
    "RAZORPAY_LINK_EXPIRY_MINUTES": 60 * 24 * 7,
    "REDIS_URL": None,
    # Operations (README: Production). Proxy counts say how many proxies in front set each
    # X-Forwarded-* header: 1 behind one nginx, 0 when clients connect directly.
    "LOG_LEVEL": "info",
    "TRUSTED_HOSTS": None,
    "PROXY_FIX_X_FOR": 0,
    "PROXY_FIX_X_PROTO": 0,
    "PROXY_FIX_X_HOST": 0,
    "PROXY_FIX_X_PORT": 0,
    "PROXY_FIX_X_PREFIX": 0,
    "METRICS_TOKEN": None,
    # Rate limits per client address ("N per minute;M per hour"); "off" turns one off, and an
    # empty value means the default, as for every setting.
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_LOGIN": "10 per minute;60 per hour",
    "RATELIMIT_INVOICE": "120 per minute",
    "RATELIMIT_INVOICE_MISSES": "30 per 10 minutes",
    "RATELIMIT_PAY": "10 per minute",
    "RATELIMIT_BIK": None,  # off: Bik must never be refused for its own volume
    "RATELIMIT_WEBHOOK": None,
    # Only for plain-http local runs: lets the admin session cookie work without https.
    "INSECURE_COOKIES": False,
    # Dashboard sign-in throttling: failures allowed per account and per address in the window.
    "ADMIN_LOGIN_MAX_FAILURES": 5,
    "ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS": 20,
    "ADMIN_LOGIN_LOCK_MINUTES": 15,
}

# Every whole-number setting and the values it may take: (lowest, highest, what it counts). One
# table and one message, so no setting can be 0 where 0 would lock every sign-in or refuse every
# order. WORKERS, TIMEOUT and MAX_REQUESTS are read by gunicorn.conf.py, not by the app.
RANGES: dict[str, tuple[int, int, str]] = {
    "DATABASE_PING_AFTER_IDLE": (0, 3600, "seconds"),
    "ORDER_NUMBER_START": (1, 999_999_999, ""),
    # The invoice PDF of a 2,000-item order renders in about 8 s on 2 vCPUs; a larger one would
    # near gunicorn's 30 s worker timeout, and a killed worker leaves the customer no PDF at all.
    "MAX_ITEMS_PER_ORDER": (1, 2_000, "items"),
    # gunicorn kills a worker after 30 s: a Razorpay call must give up well before.
    "RAZORPAY_TIMEOUT": (1, 20, "seconds"),
    "RAZORPAY_LINK_EXPIRY_MINUTES": (16, 180 * 24 * 60, "minutes (Razorpay's limits)"),
    "PROXY_FIX_X_FOR": (0, 5, "proxies"),
    "PROXY_FIX_X_PROTO": (0, 5, "proxies"),
    "PROXY_FIX_X_HOST": (0, 5, "proxies"),
    "PROXY_FIX_X_PORT": (0, 5, "proxies"),
    "PROXY_FIX_X_PREFIX": (0, 5, "proxies"),
    "ADMIN_LOGIN_MAX_FAILURES": (1, 1000, "failures"),
    "ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS": (1, 10_000, "failures"),
    "ADMIN_LOGIN_LOCK_MINUTES": (1, 24 * 60, "minutes"),
    "WORKERS": (1, 1024, "processes"),
    "TIMEOUT": (10, 3600, "seconds"),
    "MAX_REQUESTS": (0, 100_000_000, "requests (0: never recycle)"),
}

# deploy/bikshop.env.example's stand-in for every secret: public, so production refuses it.
PLACEHOLDER = "change-me"

# Settings that must be text even when the environment value looks like JSON ("123", "true").
_TEXT_KEYS = {k for k, v in DEFAULTS.items() if v is None or isinstance(v, str)}
_INT_KEYS = {k for k, v in DEFAULTS.items() if isinstance(v, int) and not isinstance(v, bool)}
_BOOL_KEYS = {k for k, v in DEFAULTS.items() if isinstance(v, bool)}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def load(app, overrides: dict | None) -> None:
    """Fill ``app.config`` from defaults, the environment and ``overrides``, then validate it."""
    app.config.from_mapping(DEFAULTS)
    _load_env(app.config)
    if overrides:
        app.config.update(overrides)
    given = {name.removeprefix("BIKSHOP_") for name in os.environ if name.startswith("BIKSHOP_")}
    _refuse_carriage_returns(app.config, given | set(overrides or ()))
    problems = _Problems()
    _normalise(app, problems)
    try:
        validate(app.config, problems)
    except ConfigError:
        local = os.path.join(app.instance_path, "bikshop.env")
        unloaded = not overrides and not any(name.startswith("BIKSHOP_") for name in os.environ)
        if unloaded and os.path.isfile(local):
            # `make run` wrote this machine's settings there; a new shell has not loaded them.
            # Said first, or the message's own advice (make a new secret key) misleads.
            raise ConfigError(
                f"no BIKSHOP_ setting is set in this shell, and {local} holds this machine's "
                f"(made by make run): load it first: set -a; . {local}; set +a"
            ) from None
        raise


def _refuse_carriage_returns(config, keys) -> None:
    """A settings file saved with Windows line endings ends every value in a carriage return,
    which the shell keeps: a URL, a secret or a name with an invisible character, and messages
    cut short where it is printed. Refused first, one line per variable, as every other check
    would only misread the value."""
    found = [
        f"BIKSHOP_{key} holds a carriage return (\\r): the file it was set from has Windows "
        "line endings; run dos2unix on that file"
        for key in sorted(keys)
        if isinstance(config.get(key), str) and "\r" in config[key]
    ]
    if found:
        raise ConfigError(found[0], found)


def _load_env(config) -> None:
    # Flask's from_prefixed_env parses values as JSON ("0123" -> error, "123" -> 123), which
    # would turn a numeric secret into an int; read the raw strings and coerce per key instead.
    for name, value in os.environ.items():
        if name.startswith("BIKSHOP_"):
            config[name.removeprefix("BIKSHOP_")] = value


def _normalise(app, problems: _Problems) -> None:
    config = app.config
    for key in _TEXT_KEYS:
        value = config.get(key)
        if value is not None and not isinstance(value, str):
            config[key] = str(value)
        elif value == "":
            config[key] = None if DEFAULTS[key] is None else DEFAULTS[key]
    for key in sorted(_INT_KEYS):
        with problems.check():
            config[key] = whole_number(key, config[key])
    for key in sorted(_BOOL_KEYS):
        value = config[key]
        if isinstance(value, str) and not value.strip():
            config[key] = DEFAULTS[key]  # empty means the default (RATELIMIT_ENABLED= is on)
        elif isinstance(value, str):
            with problems.check():
                if value.strip().lower() not in _TRUE | _FALSE:
                    raise ConfigError(f"BIKSHOP_{key} must be true or false, got {value!r}")
                config[key] = value.strip().lower() in _TRUE
    config["ENV"] = (config["ENV"] or "production").strip().lower()
    config["CURRENCY"] = config["CURRENCY"].strip().upper()
    if config["PUBLIC_URL"]:
        config["PUBLIC_URL"] = config["PUBLIC_URL"].rstrip("/")
    if not config["DATABASE_URL"]:
        config["DATABASE_URL"] = "sqlite:///bikshop.sqlite3"  # in the instance folder
    with problems.check():
        config["SQLALCHEMY_DATABASE_URI"] = _sqlalchemy_url(
            config["DATABASE_URL"], app.instance_path
        )
    config["PDF_CACHE_DIR"] = config["PDF_CACHE_DIR"] or os.path.join(
        app.instance_path, "invoice-pdfs"
    )
    config["DEBUG"] = False if config["ENV"] == "production" else config.get("DEBUG", False)
    if config.get("MAX_CONTENT_LENGTH") is None:
        config["MAX_CONTENT_LENGTH"] = 1024 * 1024  # Bik's largest real order is far smaller


def whole_number(key: str, value) -> int:
    """``value`` as an int within ``RANGES[key]``, or a ConfigError naming ``BIKSHOP_<key>``."""
    low, high, unit = RANGES[key]
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not low <= number <= high:
        unit = f" {unit}" if unit else ""
        raise ConfigError(
            f"BIKSHOP_{key} must be a whole number from {low} to {high}{unit}, got {value!r}"
        )
    return number


DEFAULT_BIND = "127.0.0.1:8000"
_BIND = re.compile(r"^(?:unix:.+|fd://[0-9]+|(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]*):([0-9]{1,5}))$")


def proxy_addresses(value: str | None) -> str:
    """``BIKSHOP_FORWARDED_ALLOW_IPS`` as gunicorn takes it: comma-separated addresses or
    networks (``10.0.0.0/8``, not ``10.0.0.1/8``, as gunicorn's own check is strict), or ``*``;
    empty is 127.0.0.1. Checked here, since gunicorn's refusal is a multi-line error and exit 1,
    which systemd restarts forever."""
    entries = [entry.strip() for entry in (value or "").split(",") if entry.strip()]
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry)
        except ValueError as exc:
            raise ConfigError(
                "BIKSHOP_FORWARDED_ALLOW_IPS must be comma-separated IP addresses or networks "
                f"such as 127.0.0.1,::1 or 10.0.0.0/8 (or *): {exc}"
            ) from None
    return ",".join(entries) or "127.0.0.1"


def bind_address(value) -> str:
    """``BIKSHOP_BIND`` as gunicorn takes it (read by gunicorn.conf.py and ``make run``): empty
    is the default; a bare port (``8101``), which gunicorn would read as a host name, or a port
    outside 1-65535 is a ConfigError."""
    # Flask reads BIKSHOP_* as JSON where it can: BIKSHOP_BIND=8101 reaches the config as 8101.
    value = "" if value is None else str(value).strip()
    if not value:
        return DEFAULT_BIND
    match = _BIND.match(value)
    if match is None or (
        match.group(1) is not None
        and (not 1 <= int(match.group(1)) <= 65535 or not _ip_literal_is_valid(value))
    ):
        raise ConfigError(
            "BIKSHOP_BIND must be host:port such as 127.0.0.1:8000 (or unix:/path/to.sock), "
            f"got {value!r}"
        )
    return value


def _ip_literal_is_valid(bind: str) -> bool:
    """A ``[...]`` host is an IPv6 address (``[::1]``, not ``[:]``); other hosts pass."""
    host = bind.rpartition(":")[0]
    if not host.startswith("["):
        return True
    try:
        ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        return False
    return True


def served_url(bind) -> str | None:
    """Where a browser on this machine reaches gunicorn bound to ``bind`` (``BIKSHOP_BIND``):
    ``http://127.0.0.1:8000`` for the default or a wildcard host; None for a unix socket or an
    inherited descriptor, which no URL names. A bad ``bind`` is a ConfigError."""
    bind = bind_address(bind)
    if bind.startswith(("unix:", "fd://")):
        return None
    host, _, port = bind.rpartition(":")
    if host in ("", "0.0.0.0"):  # noqa: S104 (naming the wildcard, not binding it)
        host = "127.0.0.1"
    elif host == "[::]":  # IPv6's wildcard: its loopback answers, even where IPv4 would not
        host = "[::1]"
    return f"http://{host}:{int(port)}"  # 08101 is port 8101


class NoURLKnown(ConfigError):  # noqa: N818 (reads as what happened, as ConfigError does)
    """No URL reaches this server: BIKSHOP_PUBLIC_URL is unset and BIKSHOP_BIND names a unix
    socket or an inherited descriptor. The message says so and what to set."""


def base_url(public_url, bind) -> str:
    """Where this server is reached, the one rule for every address bikshop shows or hands out
    without a request to go by (``bik-setup``, ``make run``, links made outside a request):
    ``BIKSHOP_PUBLIC_URL`` (no trailing /), else where gunicorn bound to ``BIKSHOP_BIND``
    answers on this machine (:func:`served_url`; ``http://127.0.0.1:8000`` by default).

    Raises NoURLKnown when neither names a URL (a unix socket behind a proxy, say): a made-up
    ``http://127.0.0.1:8000`` would be a wrong address that looks right. A bad ``bind`` is a
    ConfigError.
    """
    if public_url:
        return str(public_url).rstrip("/")
    served = served_url(bind)
    if served is None:
        raise NoURLKnown(
            f"no URL reaches this server: BIKSHOP_BIND is {bind_address(bind)}, which no URL "
            "names, and BIKSHOP_PUBLIC_URL is not set; set BIKSHOP_PUBLIC_URL to the address "
            "clients use (your proxy's https URL)"
        )
    return served


_SUPPORTED_DATABASES = "sqlite:////absolute/path.sqlite3 or postgresql://user:password@host/name"

# How a password's URL characters are written in BIKSHOP_DATABASE_URL: read back the same by
# SQLAlchemy (bikshop) and libpq (pg_dump, pg_restore, psql).
PERCENT_ENCODED = {"/": "%2F", "%": "%25", "#": "%23", "?": "%3F", ":": "%3A", "@": "%40"}
# The password as SQLAlchemy's URL pattern cuts it: after user: and up to the first @.
_PASSWORD = re.compile(r"^[\w+]+://[^:/]*:([^@]*)@")


def unencoded_in_password(url: str) -> list[str]:
    """The characters of a PostgreSQL ``url``'s password, written unencoded, that libpq reads
    otherwise than bikshop does: libpq ends the password at a ``/`` and refuses a ``%`` not
    followed by two hex digits, so pg_dump and pg_restore cannot use a URL bikshop connects
    with. (An ``@`` is refused at start-up: it misleads both.) Never the password itself."""
    if not url.startswith(("postgres://", "postgresql://", "postgresql+psycopg://")):
        return []
    match = _PASSWORD.match(url)
    password = match.group(1) if match else ""
    found = ["/"] if "/" in password else []
    return found + (["%"] if re.search(r"%(?![0-9A-Fa-f]{2})", password) else [])


def _check_postgresql_url(parsed) -> None:
    """What the driver would refuse at every connection, refused once at start-up instead: a
    port outside 1-65535, an option libpq does not know (``?sslmod=require``: each request a
    500 and ``db upgrade`` a traceback). Only names are echoed, never values."""
    ports = parsed.query.get("port", ())  # libpq's ?port=, one per host, comma-separated
    ports = [ports] if isinstance(ports, str) else list(ports)
    written = [str(parsed.port)] if parsed.port is not None else []
    written += [p.strip() for value in ports for p in value.split(",") if p.strip()]
    if any(not (p.isdigit() and 1 <= int(p) <= 65535) for p in written):
        raise ConfigError("BIKSHOP_DATABASE_URL has no valid port (1 to 65535)")
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    try:  # SQLAlchemy's own reading of the hosts (two multi-host forms mixed, say)
        PGDialect_psycopg().create_connect_args(parsed)
    except ArgumentError as exc:  # says what is wrong with the form, not the URL itself
        raise ConfigError(f"BIKSHOP_DATABASE_URL: {exc}") from None
    from psycopg import pq

    known = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
    for name in sorted(set(parsed.query) - known):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(
            f"BIKSHOP_DATABASE_URL has an option PostgreSQL does not know: {name[:40]!r}{hint}"
        )


def _sqlalchemy_url(url: str, instance_path: str) -> str:
    """The SQLAlchemy URL for the operator's ``url``: a driver bikshop ships, an absolute path."""
    # Operators paste URLs in libpq form; psycopg 3 is the driver we ship.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url.removeprefix(prefix)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Never echo the value: it may carry the database password.
        raise ConfigError(f"BIKSHOP_DATABASE_URL is not a database URL: use {_SUPPORTED_DATABASES}")
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ConfigError(
            f"BIKSHOP_DATABASE_URL uses {parsed.drivername}://, which bikshop does not support: "
            f"use {_SUPPORTED_DATABASES} (psycopg is the PostgreSQL driver installed)"
        )
    if parsed.get_backend_name() != "sqlite":
        if "@" in (parsed.host or ""):
            # postgresql://bikshop:p@ss@host/db: the host would be "ss@host", part of the
            # password, and the driver's error would show it.
            raise ConfigError(
                "BIKSHOP_DATABASE_URL has an @ in its password: write it percent-encoded, "
                "as %40 (postgresql://bikshop:p%40ss@127.0.0.1/bikshop)"
            )
        _check_postgresql_url(parsed)
        return url
    path = parsed.database or ""
    if parsed.host or parsed.port:
        raise ConfigError(
            "BIKSHOP_DATABASE_URL: a sqlite URL has no host; write sqlite:////absolute/path.sqlite3"
        )
    if path in ("", ":memory:") or path.startswith("file:"):
        return url  # in memory (tests), or SQLite's own URI form
    # A relative path is inside the instance folder (as Flask-SQLAlchemy resolves it); resolved
    # here once, so the backup command and the writer lock see the same file.
    if not os.path.isabs(path):
        # Made when it can be; if not (a read-only checkout), check-config names the missing
        # folder and requests get a 503, rather than gunicorn stopping with a traceback.
        with contextlib.suppress(OSError):
            os.makedirs(instance_path, mode=0o700, exist_ok=True)
        path = os.path.join(instance_path, path)
    return parsed.set(database=path).render_as_string(hide_password=False)


def validate(config, problems: _Problems | None = None) -> None:
    """Refuse to run with missing or unsafe settings: one line naming the variable (the first
    problem; ``ConfigError.problems`` has them all)."""
    problems = problems or _Problems()
    env = config["ENV"]
    with problems.check():
        if env not in ("production", "development"):
            raise ConfigError(f"BIKSHOP_ENV must be 'production' or 'development', got {env!r}")
    if env == "production":
        with problems.check():
            _validate_secret_key(config)
        for key in DEFAULTS:
            with problems.check():
                _refuse_placeholder(config, key)
    if not config["SECRET_KEY"]:
        config["SECRET_KEY"] = os.urandom(32).hex()  # development only: sessions end on restart
    for check in (
        _bik_auth_specs,
        _validate_operations,
        _validate_order_ids,
        _validate_razorpay,
        _validate_store,
    ):
        with problems.check():
            check(config, env)
    problems.raise_any()


def _validate_secret_key(config) -> None:
    secret = config["SECRET_KEY"]
    if not secret:
        raise ConfigError(
            "BIKSHOP_SECRET_KEY is not set: production needs a long random value "
            "(python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    if len(secret) < 24 and PLACEHOLDER not in secret.lower():  # that one has its own line
        raise ConfigError("BIKSHOP_SECRET_KEY is too short: use at least 24 random characters")
    if len(set(secret)) < 8:  # aaaa…, 1212…: long, and anyone could guess it
        raise ConfigError(
            "BIKSHOP_SECRET_KEY is not random (it repeats a few characters): make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )


def _refuse_placeholder(config, key: str) -> None:
    """The example file's ``change-me`` values are public (they are in the repository)."""
    value = config.get(key)
    if isinstance(value, str) and PLACEHOLDER in value.lower():
        raise ConfigError(
            f"BIKSHOP_{key} still holds the example's {PLACEHOLDER} placeholder: "
            "replace it with your own value"
        )


def _validate_order_ids(config, env: str) -> None:
    """The currency and order id prefix every order is written with."""
    if not is_currency_code(config["CURRENCY"]):
        raise ConfigError(
            f"BIKSHOP_CURRENCY must be an ISO 4217 currency code such as INR, "
            f"got {config['CURRENCY']!r}"
        )
    prefix = config["ORDER_ID_PREFIX"] or ""
    if len(prefix) > 16 or not re.fullmatch(r"[A-Za-z0-9_\-]*", prefix):
        raise ConfigError("BIKSHOP_ORDER_ID_PREFIX must be up to 16 letters, digits, '-' or '_'")


def _validate_store(config, env: str) -> None:
    """The invoice settings: GST rate, a GSTIN with a valid check digit, a known state, locale
    and zone."""
    from zoneinfo import ZoneInfo

    from babel import Locale, UnknownLocaleError

    from bikshop.services.gst import find_state, gstin_problem

    try:
        rate = Decimal(config["STORE_GST_RATE"])
    except ArithmeticError:
        rate = None
    if rate is None or not rate.is_finite():  # NaN cannot even be compared
        raise ConfigError("BIKSHOP_STORE_GST_RATE must be a number such as 18 or 5")
    if not 0 <= rate <= 100:
        raise ConfigError("BIKSHOP_STORE_GST_RATE must be between 0 and 100")
    gstin = (config["STORE_GSTIN"] or "").strip().upper() or None
    config["STORE_GSTIN"] = gstin
    if gstin and (problem := gstin_problem(gstin)):
        raise ConfigError(f"BIKSHOP_STORE_GSTIN {problem}")
    state = config["STORE_STATE"]
    if state and find_state(state) is None:
        raise ConfigError(f"BIKSHOP_STORE_STATE {state!r} is not an Indian state or its GST code")
    if gstin and state and find_state(state).code != gstin[:2]:
        raise ConfigError(
            f"BIKSHOP_STORE_STATE {state!r} does not match the GSTIN's state code {gstin[:2]}"
        )
    hsn = config["STORE_HSN_CODE"]
    if hsn and not re.fullmatch(r"[0-9]{4,8}", hsn):
        raise ConfigError("BIKSHOP_STORE_HSN_CODE must be 4 to 8 digits, e.g. 3304")
    logo = config["STORE_LOGO_URL"]
    if logo and not re.match(r"^(https://[^/\s]+|/static/)", logo):
        raise ConfigError("BIKSHOP_STORE_LOGO_URL must be an https:// URL or a /static/ path")
    try:
        Locale.parse(config["STORE_LOCALE"])
    except (ValueError, UnknownLocaleError):
        raise ConfigError(
            f"BIKSHOP_STORE_LOCALE must be a locale such as en_IN, got {config['STORE_LOCALE']!r}"
        )
    try:
        ZoneInfo(config["STORE_TIMEZONE"])
    except (ValueError, KeyError, OSError):
        raise ConfigError(
            "BIKSHOP_STORE_TIMEZONE must be a zone such as Asia/Kolkata, "
            f"got {config['STORE_TIMEZONE']!r}"
        )


def _validate_razorpay(config, env: str) -> None:
    """Both keys or neither, an API URL the SDK can use, no live keys outside production."""
    keys = [config["RAZORPAY_KEY_ID"], config["RAZORPAY_KEY_SECRET"]]
    if any(keys) and not all(keys):
        raise ConfigError(
            "BIKSHOP_RAZORPAY_KEY_ID and BIKSHOP_RAZORPAY_KEY_SECRET must be set together"
        )
    api_url = (config["RAZORPAY_API_URL"] or "").rstrip("/")
    if not re.match(r"^(https://[^/\s]+|http://(127\.0\.0\.1|localhost)(:\d+)?)$", api_url):
        raise ConfigError(
            "BIKSHOP_RAZORPAY_API_URL must be https://host (no path), or http://127.0.0.1:PORT "
            f"for a local stand-in, got {re.sub(r'//[^/@]*@', '//[secret]@', api_url)!r}"
        )
    config["RAZORPAY_API_URL"] = api_url
    # The webhook is how most payments are learnt of: UPI on Android never comes back to the
    # redirect, and a customer may close the page first. Without its secret every delivery is
    # refused, and paid orders would wait for someone to run reconcile-payments.
    if env == "production" and all(keys) and not config["RAZORPAY_WEBHOOK_SECRET"]:
        raise ConfigError(
            "BIKSHOP_RAZORPAY_WEBHOOK_SECRET is not set: production with Razorpay keys needs "
            "the secret of the webhook created in Razorpay's Dashboard, or payments stay pending"
        )
    if env != "production" and (config["RAZORPAY_KEY_ID"] or "").startswith("rzp_live_"):
        raise ConfigError(
            "BIKSHOP_RAZORPAY_KEY_ID is a live key but BIKSHOP_ENV is development: "
            "use rzp_test_ keys outside production"
        )


def _validate_operations(config, env: str) -> None:
    """The public URL, trusted hosts, log level, the Redis URL and rate-limit strings."""
    from limits import parse_many

    public_url = config["PUBLIC_URL"]
    not_a_base = (
        "BIKSHOP_PUBLIC_URL must be an absolute http(s) URL without a query or fragment "
        f"(links are built by appending paths to it), got {public_url!r}"
    )
    # Before any message that echoes the URL: it would show the password.
    if "@" in re.split(r"[/?#]", re.sub(r"^[^:/?#]*://", "", public_url or ""), maxsplit=1)[0]:
        raise ConfigError(
            "BIKSHOP_PUBLIC_URL must not hold a user or password (user:password@): every "
            "invoice link sent to customers is built from it"
        )
    if public_url and not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", public_url):
        raise ConfigError(not_a_base)
    try:
        urlsplit(public_url or "")
    except ValueError:  # an unclosed [IPv6 address
        raise ConfigError(not_a_base) from None
    if public_url:
        try:
            _ = urlsplit(public_url).port  # urlsplit checks the range only when asked
        except ValueError:
            raise ConfigError(
                f"BIKSHOP_PUBLIC_URL has no valid port (1 to 65535), got {public_url!r}"
            ) from None

    hosts = config["TRUSTED_HOSTS"] or []
    if isinstance(hosts, str):
        hosts = hosts.split(",")
    hosts = [h.strip().lower() for h in hosts if h.strip()]  # Host is lowercased to match
    for host in hosts:
        # A URL never matches a Host header: every request would be a 400.
        if not re.fullmatch(r"\.?[^\s/:@?#\[\]]+(:\d{1,5})?|\[[0-9a-f:.]+\](:\d{1,5})?", host):
            raise ConfigError(
                "BIKSHOP_TRUSTED_HOSTS lists host names, comma-separated (shop.example.com, "
                f".example.com for its subdomains, 127.0.0.1:8000), not URLs: got {host!r}"
            )
    config["TRUSTED_HOSTS"] = hosts or None  # Flask answers 400 to any other Host
    level = (config["LOG_LEVEL"] or "info").strip().lower()
    if level not in ("debug", "info", "warning", "error", "critical"):
        raise ConfigError(
            f"BIKSHOP_LOG_LEVEL must be debug, info, warning, error or critical, got {level!r}"
        )
    config["LOG_LEVEL"] = level
    redis_url = config["REDIS_URL"]
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "redis+unix://")):
        scheme, found, _ = redis_url.partition("://")  # the rest may hold a password
        raise ConfigError(
            "BIKSHOP_REDIS_URL must start with redis://, rediss:// or redis+unix:// "
            f"(a socket path), got {scheme + '://' if found else 'no scheme'}"
        )
    if redis_url:
        from redis.connection import parse_url

        try:  # as the rate limiter will read it (redis-py); never echoed: it may hold a password
            parse_url(redis_url.replace("redis+unix://", "unix://", 1))
        except ValueError:
            raise ConfigError(
                "BIKSHOP_REDIS_URL is not a Redis URL: write redis://[:password@]host:port/db, "
                "with a port from 1 to 65535 and a database number"
            ) from None
    for key in ("LOGIN", "INVOICE", "INVOICE_MISSES", "PAY", "BIK", "WEBHOOK"):
        value = config[f"RATELIMIT_{key}"]
        if value and value.strip().lower() == "off":
            config[f"RATELIMIT_{key}"] = value = None  # empty means the default; off means none
        try:
            limits = parse_many(value) if value else []
        except ValueError:
            raise ConfigError(
                f"BIKSHOP_RATELIMIT_{key} must look like '10 per minute;100 per hour', "
                f"got {value!r}"
            )
        if any(limit.amount < 1 for limit in limits):  # 0 per minute refuses every request
            raise ConfigError(
                f"BIKSHOP_RATELIMIT_{key} allows no request at all ({value!r}): give at least "
                "1 per period, or 'off' for no limit"
            )


# Each Bik endpoint's own auth setting, which overrides BIK_AUTH for it.
BIK_AUTH_OVERRIDES = {"placeOrder": "BIK_PLACE_ORDER_AUTH", "getOrder": "BIK_GET_ORDER_AUTH"}


def bik_auth_key(config, endpoint: str) -> str:
    """The setting (its name after ``BIKSHOP_``) that holds ``endpoint``'s auth: its override
    when set, else ``BIK_AUTH``; what a message about that auth names."""
    key = BIK_AUTH_OVERRIDES[endpoint]
    return key if config[key] else "BIK_AUTH"


def _bik_auth_specs(config, env: str) -> None:
    specs = {}
    for endpoint in BIK_AUTH_OVERRIDES:
        key = bik_auth_key(config, endpoint)
        raw = config[key]
        variable = f"BIKSHOP_{key}"
        if raw is None:
            if env == "production":
                # Both overrides set is enough: only an endpoint with neither is refused.
                others = [k for k in BIK_AUTH_OVERRIDES.values() if config[k]]
                missing = f" (nor BIKSHOP_{BIK_AUTH_OVERRIDES[endpoint]}, for {endpoint})"
                raise ConfigError(
                    f"BIKSHOP_BIK_AUTH is not set{missing if others else ''}: choose "
                    "bearer:<token>, apikey:<Header>:<token>, basic:<user>:<password>, or none "
                    "explicitly"
                )
            raw = "none"
        try:
            specs[endpoint] = parse_auth_spec(raw)
        except AuthSpecError as exc:
            raise ConfigError(f"{variable} is invalid: {exc}")
    config["BIK_AUTH_SPECS"] = specs
