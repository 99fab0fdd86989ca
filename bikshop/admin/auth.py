"""Signing in and out of the dashboard; every other /admin route requires a signed-in admin."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import LoginManager, current_user, login_user, logout_user
from itsdangerous import BadData, URLSafeTimedSerializer

from bikshop.admin import bp
from bikshop.admin.forms import LoginForm, LogoutForm, csrf_failed
from bikshop.services import admins

login_manager = LoginManager()
login_manager.session_protection = "basic"

# Where Flask-Login keeps the signed-in admin's key in the session cookie.
_SIGNED_IN_AS = "_user_id"

# The only dashboard endpoints a stranger may reach.
PUBLIC_ENDPOINTS = {"admin.login"}


@login_manager.user_loader
def _load_admin(session_key: str):
    return admins.load_session_admin(session_key)


@login_manager.unauthorized_handler
def _to_login():
    if request.method == "POST" and request.endpoint != "admin.logout":
        # A form sent from a page left open after signing out (or from another tab's sign-out):
        # say so, or the owner takes the order page they come back to for the change made.
        flash("You were signed out, so that change was not made. Sign in, then try again.", "error")
    elif session.pop(_SIGNED_IN_AS, None) is not None:
        # The cookie names a sign-in that has ended: 30 days passed, the password was changed
        # or the account switched off. Said once: the stale key goes with it.
        days = admins.SESSION_LIFETIME.days
        flash(
            f"Your sign-in has ended: a sign-in lasts {days} days, and ends when the password "
            "is changed or the account switched off. Please sign in again.",
            "info",
        )
    return redirect(url_for("admin.login", next=_here()))


def _here() -> str:
    """Where to come back to after signing in: this page, or for a form posted from a page
    (an action URL only takes POST), the page the form was on."""
    if request.method == "GET":
        return request.full_path.rstrip("?")
    public_id = (request.view_args or {}).get("public_id")
    if public_id:
        return url_for("admin.order", public_id=public_id)
    return url_for("admin.orders")


@bp.before_request
def require_admin():
    """Refuse every dashboard route to a visitor who has not signed in (new routes included)."""
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    return login_manager.unauthorized()


def safe_next(target: str | None) -> str:
    """``target`` if it is a dashboard path on this server, else the order list.

    Refuses other hosts in every spelling browsers accept: ``//evil``, ``/\\evil``,
    ``https://evil``, ``javascript:``, and control characters browsers strip.
    """
    default = url_for("admin.orders")
    if not target or not target.startswith("/admin") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    # A dashboard page, as the browser will resolve it: not /adminx, not /admin/../bik/…,
    # and not the sign-out (nobody signs in to be asked to sign out).
    path = unquote(parts.path)
    segments = path.split("/")
    if not (path == "/admin" or path.startswith("/admin/")) or ".." in segments or "//" in path:
        return default
    if path.rstrip("/") == url_for("admin.logout").rstrip("/"):
        return default
    return target


def page_after_sign_in(target: str | None) -> str:
    """Where signing in leads: ``target`` made safe, and for the CSV export the order list with
    the same filters. A download answers without leaving the page, so going straight to it
    would leave the owner looking at the sign-in form as if it had failed."""
    target = safe_next(target)
    parts = urlsplit(target)
    if parts.path == url_for("admin.export_csv"):
        return url_for("admin.orders") + (f"?{parts.query}" if parts.query else "")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form; throttled per account and per address after repeated failures."""
    if current_user.is_authenticated:
        return redirect(page_after_sign_in(request.args.get("next")))
    form = LoginForm(next=request.args.get("next", ""))
    if request.method == "GET":
        return render_template("admin/login.html", form=form)
    if not form.validate_on_submit():
        status = 400
        if not csrf_failed(form):
            message = "Enter your email and password."
        elif (
            not request.is_secure
            and current_app.config["SESSION_COOKIE_SECURE"]
            and current_app.config["SESSION_COOKIE_NAME"] not in request.cookies
        ):
            # The browser keeps the Secure cookie off plain http: no session holds the token.
            message = (
                "Signing in needs https: the session cookie is only sent over https. "
                "For a plain-http run on your own machine, set BIKSHOP_INSECURE_COOKIES=true."
            )
        else:
            message = "This form expired or did not come from this page. Please sign in again."
        return render_template("admin/login.html", form=form, error=message), status
    attempt = admins.sign_in(
        form.email.data,
        form.password.data,
        request.remote_addr or "",
        known_accounts=_known_accounts(),
    )
    if attempt.locked_minutes:
        minutes = attempt.locked_minutes
        message = (
            "Too many failed sign-ins for this account or from this network. "
            f"Try again in {minutes} minute{'' if minutes == 1 else 's'}."
        )
        return render_template("admin/login.html", form=form, error=message), 429
    if attempt.admin is None:
        return render_template("admin/login.html", form=form, error="Wrong email or password."), 401
    session.clear()  # a fresh session (and CSRF secret) for the signed-in admin
    login_user(attempt.admin)
    response = redirect(page_after_sign_in(form.next.data), 303)
    _remember_device(response, attempt.admin.email)
    return response


# A browser an account has signed in on keeps a signed list of those accounts for a year: when
# guesses from many addresses have locked an account for everyone (admins.ACCOUNT_CEILING), the
# owner's own browsers still get in (OWASP's "device cookie"). It opens nothing by itself, and
# names no one: it holds each account's admins.device_mark, not its email. It outlives signing
# out on purpose: the browser is the owner's still, and a lock is met while signed out.
DEVICE_COOKIE = "bikshop_device"
_DEVICE_DAYS = 365
_DEVICE_ACCOUNTS = 5  # the most recent accounts a browser keeps
_DEVICE_SALT = "bikshop-known-device-marks"
# Cookies written until December 2026 list the emails themselves. Still read, so that the owner's
# browsers stay known across the upgrade; the next sign-in there rewrites it as marks.
_DEVICE_SALT_WITH_EMAILS = "bikshop-known-device"


def _device_serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=salt)


def _known_accounts() -> list[str]:
    """The marks of the accounts this browser has signed in on (its device cookie, checked),
    or none."""
    value = request.cookies.get(DEVICE_COOKIE)
    if not value:
        return []
    for salt in (_DEVICE_SALT, _DEVICE_SALT_WITH_EMAILS):
        try:
            accounts = _device_serializer(salt).loads(value, max_age=_DEVICE_DAYS * 86400)
        except BadData:
            continue
        if not isinstance(accounts, list):
            return []
        accounts = [a for a in accounts if isinstance(a, str)]
        if salt == _DEVICE_SALT_WITH_EMAILS:
            accounts = [admins.device_mark(email) for email in accounts]
        return accounts
    return []


def _remember_device(response, email: str) -> None:
    mark = admins.device_mark(email)
    accounts = [mark, *(a for a in _known_accounts() if a != mark)][:_DEVICE_ACCOUNTS]
    config = current_app.config
    response.set_cookie(
        DEVICE_COOKIE,
        _device_serializer(_DEVICE_SALT).dumps(accounts),
        max_age=_DEVICE_DAYS * 86400,
        path=url_for("admin.login"),
        secure=config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )


@bp.get("/logout")
def logout_page():
    """The sign-out address typed or bookmarked: a page with the button (signing out takes a
    POST with the CSRF token, so that no other site can sign the owner out)."""
    return render_template("admin/logout.html", logout_form=LogoutForm())


@bp.post("/logout")
def logout():
    """Sign out (a POST with the form's CSRF token, so no other site can sign the owner out)."""
    form = LogoutForm()
    if not form.validate_on_submit():
        return render_template(
            "error.html",
            title="This form expired",
            message="Reload the page and try again.",
            status=400,
        ), 400
    admins.end_session(current_user.get_id())
    logout_user()
    session.clear()
    return redirect(url_for("admin.login"), 303)
