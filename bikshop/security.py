"""Serving behind a proxy, and the security headers every answer carries."""

from __future__ import annotations

import ipaddress
import re

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

# Pages are plain server-rendered HTML: scripts and styles come from our own /static, images
# also from https (a store logo) and data: URIs (inline icons), and no site may frame them.
# form-action is left out on purpose: the Pay button redirects to the payment provider's host.
DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_PROXY_COUNTS = {"x_for": "X_FOR", "x_proto": "X_PROTO", "x_host": "X_HOST", "x_port": "X_PORT"}


def client_address(address: str | None = None) -> str:
    """Who a request counts as, for rate limits and sign-in locks: its address
    (``request.remote_addr``, the client's behind a trusted proxy), and for IPv6 its /64. One
    home or phone connection is given a whole /64, so counting single IPv6 addresses let one
    client take a fresh allowance from each of its 2^64 addresses."""
    address = (request.remote_addr if address is None else address) or "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address  # "unknown", or a unix socket's empty peer
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:  # an IPv4 client of a dual-stack socket
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network(f"{parsed}/64", strict=False))


def init_app(app: Flask) -> None:
    """Trust exactly the configured number of proxies; add security headers to every answer."""
    counts = {arg: app.config[f"PROXY_FIX_{key}"] for arg, key in _PROXY_COUNTS.items()}
    counts["x_prefix"] = app.config["PROXY_FIX_X_PREFIX"]
    # Inside ProxyFix: the scheme it reads from a trusted proxy decides HSTS.
    app.wsgi_app = _with_security_headers(_merged_slashes(app.wsgi_app))
    if app.config["TRUSTED_HOSTS"]:
        app.wsgi_app = _lowercase_host(app.wsgi_app)  # inside ProxyFix: its X-Forwarded-Host too
    if any(counts.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, **counts)


def _merged_slashes(wsgi_app):
    """A path with doubled slashes is served as the path with single ones. A root URL entered
    in Bik with a trailing slash (``https://shop/bik/``) makes Bik call ``/bik//placeOrder``:
    Werkzeug would answer that with a 308 redirect and an HTML page, which an API client may
    not follow with its POST, losing the order."""

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if "//" in path:
            environ["PATH_INFO"] = _SLASHES.sub("/", path)
        return wsgi_app(environ, start_response)

    return app


_SLASHES = re.compile(r"/{2,}")


def _lowercase_host(wsgi_app):
    """Host names are case-insensitive, but Werkzeug compares the Host header with
    ``TRUSTED_HOSTS`` as it is: ``SHOP.EXAMPLE.COM`` would be refused for
    ``shop.example.com``."""

    def app(environ, start_response):
        host = environ.get("HTTP_HOST")
        if host and not host.islower():
            environ["HTTP_HOST"] = host.lower()
        return wsgi_app(environ, start_response)

    return app


# (header, value): added where the answer has none of that header.
_EVERYWHERE = (
    ("X-Content-Type-Options", "nosniff"),
    # Invoice links carry their token in the URL: never hand it to another site as a referrer.
    ("Referrer-Policy", "no-referrer"),
)
_ON_HTML = (("X-Frame-Options", "DENY"), ("Content-Security-Policy", DEFAULT_CSP))
_ON_HTTPS = (("Strict-Transport-Security", "max-age=31536000"),)


def _with_security_headers(wsgi_app):
    """The app, adding to every answer: nosniff and no referrer; on HTML also no framing and a
    default CSP; HSTS over https. A header the view set itself (a stricter policy) is kept.

    Middleware rather than an after-request hook: one pass over the answer's header list,
    without Werkzeug's Headers (a setdefault of a missing header searched the list three times
    and raised and caught a KeyError) or a lookup of Flask's request proxy; every answer the
    app makes gets them, an error page too (gunicorn's own page, for an answer that failed
    while its body was streamed, is bare, with none).
    """

    def app(environ, start_response):
        secure = environ.get("wsgi.url_scheme") == "https"

        def start(status, headers, exc_info=None):
            present = set()
            html = False
            for name, value in headers:
                name = name.lower()
                present.add(name)
                if name == "content-type":
                    html = value.partition(";")[0].strip().lower() == "text/html"
            wanted = _EVERYWHERE
            if html:
                wanted += _ON_HTML
            if secure:
                wanted += _ON_HTTPS
            for name, value in wanted:
                if name.lower() not in present:
                    headers.append((name, value))
            return start_response(status, headers, exc_info)

        return wsgi_app(environ, start)

    return app
