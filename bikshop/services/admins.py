"""Dashboard accounts: create, list, disable, set a password, and sign in with throttling."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from flask import current_app
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.security import check_password_hash, generate_password_hash

from bikshop.database import unavailable
from bikshop.extensions import db
from bikshop.models.admin import AdminSession, AdminUser, LoginFailure
from bikshop.models.types import utcnow
from bikshop.security import client_address

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10
# One @, something on each side, a dot in the domain; deliverability is the owner's business.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class AccountError(ValueError):
    """A bad email or password, or an unknown account; the message names the problem."""


@dataclass
class SignIn:
    """The outcome of a sign-in: the admin, or why not (and for how long when locked)."""

    admin: AdminUser | None
    locked_minutes: int = 0


def normalise_email(email: str) -> str:
    """The account key: trimmed, lower-cased, and shaped like an email address."""
    email = (email or "").strip().lower()
    if len(email) > 320 or not _EMAIL.match(email):
        raise AccountError(f"{email!r} is not an email address")
    return email


def check_password_rules(password: str) -> None:
    """Refuse passwords a guesser would find quickly."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password must be at least {MIN_PASSWORD_LENGTH} characters")


def find_admin(email: str) -> AdminUser | None:
    """The account for ``email`` (any case), or None."""
    key = (email or "").strip().lower()
    return db.session.scalars(select(AdminUser).where(AdminUser.email == key)).one_or_none()


def create_admin(email: str, password: str) -> AdminUser:
    """Add an active account; refuses a duplicate email or a short password. Commits."""
    email = normalise_email(email)
    check_password_rules(password)
    if find_admin(email) is not None:
        raise AccountError(f"An admin with email {email} already exists")
    admin = AdminUser(email=email, password_hash=generate_password_hash(password), active=True)
    db.session.add(admin)
    db.session.commit()
    return admin


def list_admins() -> list[AdminUser]:
    """Every account, oldest first."""
    return list(db.session.scalars(select(AdminUser).order_by(AdminUser.id)))


def _existing(email: str) -> AdminUser:
    admin = find_admin(email)
    if admin is None:
        raise AccountError(f"No admin with email {email.strip().lower()}")
    return admin


def set_active(email: str, active: bool) -> AdminUser:
    """Disable (or enable again) an account; a disabled account's sessions end at once, for
    good (enabling it again asks for a new sign-in)."""
    admin = _existing(email)
    admin.active = active
    if not active:
        _end_sessions(admin)
    db.session.commit()
    return admin


def set_password(email: str, password: str) -> AdminUser:
    """Give an account a new password; every session signed in with the old one ends."""
    check_password_rules(password)
    admin = _existing(email)
    admin.password_hash = generate_password_hash(password)
    db.session.execute(delete(LoginFailure).where(LoginFailure.email == admin.email))
    _end_sessions(admin)
    db.session.commit()
    return admin


# A signed-in browser stays signed in this long, however often it is used (a phone's browser
# may keep its cookies for months).
SESSION_LIFETIME = timedelta(days=30)


def expired_sessions():
    """The WHERE clause for sessions past ``SESSION_LIFETIME``: no cookie opens them any more
    (``load_session_admin``), so deleting them signs nobody out. Deleted on each sign-in and by
    ``flask --app bikshop prune``."""
    return AdminSession.created_at < utcnow() - SESSION_LIFETIME


def _lock_window_start():
    """Failed sign-ins before this moment no longer count towards a lock."""
    return utcnow() - timedelta(minutes=current_app.config["ADMIN_LOGIN_LOCK_MINUTES"])


def stale_login_failures(since=None):
    """The WHERE clause for failed sign-ins older than the lock window (``since``, else now's):
    they lock nothing any more. Deleted on each failed sign-in and by ``flask --app bikshop
    prune`` (an address that fails once and never comes back leaves one)."""
    return LoginFailure.created_at < (since or _lock_window_start())


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def start_session(admin: AdminUser) -> None:
    """Open a server-side session for ``admin`` (``admin.session_key`` is then what the cookie
    keeps); sessions past their lifetime are deleted on the way. Commits."""
    key = secrets.token_urlsafe(32)
    db.session.execute(delete(AdminSession).where(expired_sessions()))
    db.session.add(AdminSession(admin_id=admin.id, key_hash=_key_hash(key)))
    db.session.commit()
    admin.session_key = f"{admin.id}.{key}"


def _session_row(session_key: str | None):
    """The WHERE clause for the session a cookie's key (``<admin id>.<key>``) names, or None
    for a key of any other shape."""
    admin_id, _, key = (session_key or "").partition(".")
    if not admin_id.isdigit() or not key:
        return None
    return (AdminSession.admin_id == int(admin_id)) & (AdminSession.key_hash == _key_hash(key))


def end_session(session_key: str | None) -> None:
    """Sign one browser out on the server: its cookie opens nothing any more. Commits."""
    row = _session_row(session_key)
    if row is not None:
        db.session.execute(delete(AdminSession).where(row))
        db.session.commit()


def _end_sessions(admin: AdminUser) -> None:
    db.session.execute(delete(AdminSession).where(AdminSession.admin_id == admin.id))


def load_session_admin(session_key: str) -> AdminUser | None:
    """The admin behind a session cookie's key (``<id>.<key>``), while that session is open,
    not past its lifetime, and the account active."""
    row = _session_row(session_key)
    if row is None:
        return None
    found = db.session.execute(
        select(AdminUser, AdminSession.list_query)
        .join(AdminSession, AdminSession.admin_id == AdminUser.id)
        .where(
            row,
            AdminSession.created_at >= utcnow() - SESSION_LIFETIME,
            AdminUser.active.is_(True),
        )
    ).one_or_none()
    if found is None:
        return None
    admin, list_query = found
    admin.session_key, admin.list_query = session_key, list_query
    return admin


def remember_list(admin: AdminUser, query: str) -> None:
    """Keep ``query`` as the order list ``admin``'s browser session last showed. Commits, when
    it changed. A database refusing writes (read-only, locked) leaves it unchanged: the list
    was read, and is shown, all the same."""
    row = _session_row(admin.session_key)
    if row is None or admin.list_query == query:
        return
    try:
        db.session.execute(update(AdminSession).where(row).values(list_query=query))
        db.session.commit()
    except SQLAlchemyError as error:
        db.session.rollback()
        if not unavailable(error):
            raise
        return
    admin.list_query = query


def device_mark(email: str) -> str:
    """What a browser's device cookie keeps of an account signed in on it (``email`` in lower
    case, as stored): a hash keyed with the secret key. The cookie is signed, not encrypted, so
    the email itself would be readable by anyone holding the browser or a copy of its cookies."""
    secret = current_app.secret_key
    secret = secret.encode() if isinstance(secret, str) else secret
    message = b"bikshop-known-device\0" + email.encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def sign_in(
    email: str, password: str, address: str, *, known_accounts: Collection[str] = ()
) -> SignIn:
    """Check a password, refusing while the account or the address has too many recent failures.
    ``known_accounts``: the :func:`device_mark` of each account the browser asking has signed
    in on before (its device cookie).

    The lock is checked before the password, so a locked account reveals nothing about it.
    """
    config = current_app.config
    key = (email or "").strip().lower()[:320]
    address = client_address(address)[:64]
    since = _lock_window_start()
    if _is_locked(key, address, since, known_device=device_mark(key) in known_accounts):
        log.warning(
            "dashboard sign-in refused: too many recent failures",
            extra={"account": key if find_admin(key) else None, "address": address},
        )
        return SignIn(None, locked_minutes=config["ADMIN_LOGIN_LOCK_MINUTES"])
    admin = find_admin(key)
    valid = check_password_hash(admin.password_hash if admin else _dummy_hash(), password or "")
    if admin is None or not valid or not admin.active:
        db.session.execute(delete(LoginFailure).where(stale_login_failures(since)))
        db.session.add(LoginFailure(email=key, address=address))
        db.session.commit()
        reason = "unknown account" if admin is None else "wrong password"
        if admin is not None and valid:
            reason = "account disabled"
        # What was typed as an email is logged only when it is an account's: a mistyped
        # email field often holds a password.
        log.warning(
            "dashboard sign-in failed: %s",
            reason,
            extra={"account": admin.email if admin else None, "address": address},
        )
        return SignIn(None)
    # This address's failures for the account are forgiven; others' stand: the owner signing
    # in must not hand a stranger guessing elsewhere a fresh allowance.
    db.session.execute(
        delete(LoginFailure).where(LoginFailure.email == key, LoginFailure.address == address)
    )
    admin.last_login_at = utcnow()
    start_session(admin)
    log.info("dashboard sign-in", extra={"account": admin.email, "address": address})
    return SignIn(admin)


@cache
def _dummy_hash() -> str:
    # Checked when the email is unknown, so a wrong email costs as long as a wrong password.
    return generate_password_hash("not-a-password-anyone-has")


def _is_locked(email: str, address: str, since, *, known_device: bool = False) -> bool:
    """Too many recent failures from this address, or for this account from an address that
    took part in them. An account locked by guesses from elsewhere still lets an address that
    has not failed for it try: a stranger who knows the owner's email cannot keep the owner
    out by failing five times every quarter hour. Each further address gets one guess while
    the lock lasts (then it has failed for the account too).

    Past ``ACCOUNT_CEILING`` times the account's allowance, from however many addresses (a
    botnet's, each with its one guess), the account is locked for every address until the
    window passes: guessing is bounded per account, not only per address. A ``known_device``
    (a browser the account signed in on before: admin/auth.py) is not held by that lock, so
    strangers failing cannot keep the owner out; sessions already signed in go on, and
    ``flask --app bikshop set-admin-password`` lifts the lock."""
    config = current_app.config
    recent = LoginFailure.created_at >= since
    by_account, by_address, from_here = db.session.execute(
        select(
            func.count().filter(LoginFailure.email == email),
            func.count().filter(LoginFailure.address == address),
            func.count().filter(LoginFailure.email == email, LoginFailure.address == address),
        ).where(recent, or_(LoginFailure.email == email, LoginFailure.address == address))
    ).one()
    allowance = config["ADMIN_LOGIN_MAX_FAILURES"]
    return (
        by_address >= config["ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS"]
        or (by_account >= allowance and from_here > 0)
        or (by_account >= allowance * ACCOUNT_CEILING and not known_device)
    )


# How many times its allowance of failures an account may take, from all addresses together,
# before it is locked for every address (see _is_locked).
ACCOUNT_CEILING = 10
