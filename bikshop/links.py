"""Absolute links bikshop hands out (invoiceUrl, payment callback URLs)."""

from __future__ import annotations

from urllib.parse import quote

from flask import current_app, has_request_context, request

from bikshop.errors import ApiError

# Reserved and already-escaped characters stay as sent; anything else a browser would have to
# escape (spaces, quotes, angle brackets, non-ASCII) is percent-encoded.
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"


def public_base() -> str:
    """``BIKSHOP_PUBLIC_URL``, or the scheme and host the current request came in on; outside
    a request, where ``BIKSHOP_BIND`` answers (``config.base_url``, the one rule). With neither
    a URL nor a request (a unix socket, from a command) it raises ``NoURLKnown``, saying what
    to set, rather than hand a customer a link to an address that is not this server."""
    configured = current_app._get_current_object().config["PUBLIC_URL"]  # no proxy lookup
    if configured:
        return configured
    if has_request_context():
        # What request.host_url gives, without its IRI decoding: a link stays ASCII (an
        # internationalised host keeps its xn-- form), and a getOrder is ~4% cheaper.
        current = request._get_current_object()  # one lookup for both
        # A forwarded scheme can say anything (javascript); a host, any case.
        scheme = "https" if current.scheme == "https" else "http"
        host = request_host(current)
        # The path a proxy serves the app under (X-Forwarded-Prefix, with
        # BIKSHOP_PROXY_FIX_X_PREFIX), as url_for adds it to the page's own links.
        return f"{scheme}://{host.lower()}{_path_prefix(current.script_root)}"
    from bikshop.config import base_url  # here: bikshop.config imports this module's users

    return base_url(None, current_app.config.get("BIND"))


def request_host(current) -> str:
    """The host name ``current`` came in for, to make a link from; a 400 when there is none.
    Werkzeug reads a malformed Host (``a_b``, ``x:99999``) as "" (the link would be
    ``http:///…``), and a missing one as the address gunicorn listens on, which is not where
    customers reach the shop."""
    host = current.host if current.environ.get("HTTP_HOST") else ""
    if not host:
        raise ApiError(
            400,
            "Send a Host header with this server's name: links to this server (invoiceUrl, "
            "the payment's way back) are made from it, or from BIKSHOP_PUBLIC_URL when the "
            "server sets it",
            code="bad_host",
        )
    return host


def _path_prefix(script_root: str) -> str:
    """The proxy's path prefix as a path: one not starting with "/" (``@evil.example``,
    ``.evil.example``) would change the link's host, and "?" or "#" its meaning."""
    if not script_root.startswith("/"):
        return ""
    return quote(script_root, safe=_PATH_SAFE)


# RFC 3986's pchar and "/", and "%" for what is already escaped: no "?" or "#".
_PATH_SAFE = "/:@!$&'()*+,;=%~"


def invoice_url(order) -> str:
    """The customer's invoice page for ``order``: the random token is the only key."""
    return f"{public_base()}/invoice/{order.invoice_token}"


def percent_encoded(url: str) -> str:
    """``url`` as a link that survives being shared as text (WhatsApp ends a link at a space):
    what a browser would send for it, already-escaped parts left alone."""
    return quote(url, safe=_URL_SAFE)
