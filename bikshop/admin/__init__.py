"""The shop owner's dashboard under /admin: sign-in, the order list, the order page, actions."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, current_app, request

bp = Blueprint("admin", __name__, url_prefix="/admin")

# What the dashboard's pages may load: only bikshop's own files, never inline script or style.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@bp.record_once
def _init_app(state) -> None:
    init_app(state.app)


def init_app(app: Flask) -> None:
    """Sign-in sessions and cookie flags for the dashboard."""
    from bikshop.admin.auth import login_manager

    production = app.config["ENV"] == "production"
    app.config.update(
        SESSION_COOKIE_SECURE=production and not app.config["INSECURE_COOKIES"],
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=production and not app.config["INSECURE_COOKIES"],
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        # A form left open on a phone for hours still works: the token lives as long as the
        # session, which logout and a new password end.
        WTF_CSRF_TIME_LIMIT=None,
    )
    login_manager.init_app(app)
    _remember_cookie_hook_on_dashboard_only(app, login_manager._update_remember_cookie)


def _remember_cookie_hook_on_dashboard_only(app: Flask, hook) -> None:
    """Flask-Login refreshes its remember-me cookie from an app-wide hook that reads the session
    on every answer, which costs every Bik call a session look-up and a ``Vary: Cookie``. Only
    the dashboard signs anyone in, so the hook runs on its routes alone."""
    app_hooks = app.after_request_funcs.get(None, [])
    if hook in app_hooks:
        app_hooks.remove(hook)
        app.after_request_funcs.setdefault(bp.name, []).append(hook)


@bp.before_request
def _refuse_forms_from_other_sites():
    """A form another site makes the owner's browser post (to an action, the sign-in or the
    sign-out) is refused before the session is read or written. Its CSRF token already fails,
    but the answer to it used to write a fresh session cookie over the owner's (the browser
    keeps the Lax cookie off such a POST, and takes a new one from its answer): any site could
    sign the owner out. Browsers say where a request came from in ``Sec-Fetch-Site`` (and in
    ``Origin``, for older ones); a client that sends neither is judged by its CSRF token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if site is not None:
        foreign = site not in ("same-origin", "none")
    else:
        # The host name alone: behind a proxy the app may see http, or no port.
        foreign = origin is not None and urlsplit(origin).hostname not in _own_host_names()
    if foreign:
        abort(403, description="This form was sent from another site, so nothing was changed.")
    return None


def _own_host_names() -> set[str | None]:
    """The names this server is reached by: the request's host, and BIKSHOP_PUBLIC_URL's."""
    names = {urlsplit(f"//{request.host}").hostname}
    public_url = current_app.config["PUBLIC_URL"]
    if public_url:
        names.add(urlsplit(public_url).hostname)
    return names - {None}


@bp.before_request
def _refuse_nul_characters():
    """A NUL character (U+0000) in the address, a search or a form field is refused with a 400
    before anything reads it: PostgreSQL text cannot hold one, so the query would fail as a 500
    (SQLite would quietly search for it)."""
    texts = [request.path]
    for source in (request.args, request.form):
        for key, values in source.lists():
            texts += [key, *values]
    if any("\x00" in text for text in texts):
        abort(400, description="The request held a NUL character, which no field can hold.")
    return None


@bp.after_request
def _private_headers(response):
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


from bikshop.admin import actions, auth, display, views  # noqa: E402,F401  (routes on bp)
