"""Rate limits on the doors people can abuse: admin sign-in, invoice lookups and the Pay button.

Limits are attached by URL rule when the app is built, so each blueprint's views stay as their
authors wrote them. Counts are per client address (``request.remote_addr``, an IPv6 one by
its /64: ``security.client_address``; set ``BIKSHOP_PROXY_FIX_X_FOR`` behind nginx, or every
client shares nginx's address). Storage is Redis when ``BIKSHOP_REDIS_URL`` is set, so all
workers and instances share one count; without it each gunicorn worker counts on its own.
The Bik endpoints and the Razorpay webhook carry no limit unless the operator sets one:
refusing Bik or Razorpay loses orders and payments.
"""

from __future__ import annotations

import hashlib
import time
from functools import partial

from flask import Flask, current_app, request
from werkzeug.routing import Rule

from bikshop.extensions import limiter
from bikshop.invoice.access import token_is_known
from bikshop.security import client_address


def _message() -> str:
    """The 429's words, with the wait its ``Retry-After`` gives: the breached limit's window
    (ten minutes for the guessing limit), not always "a minute"."""
    limit = limiter.current_limit
    seconds = max(1, int(limit.reset_at - time.time())) if limit else 60  # as Retry-After
    return f"Too many requests from your network. Please wait {wait_words(seconds)} and try again."


def wait_words(seconds: int) -> str:
    """``seconds`` as a person says a wait: "20 seconds", "a minute", "about 10 minutes"."""
    if seconds < 30:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = max(1, round(seconds / 60))  # from 30 s "a minute", as Retry-After counts down
    if minutes < 60:
        return "a minute" if minutes == 1 else f"about {minutes} minutes"
    hours = round(minutes / 60)
    return "about an hour" if hours == 1 else f"about {hours} hours"


def _setting(name: str):
    def value() -> str:
        return current_app.config[f"RATELIMIT_{name}"]

    value.__name__ = f"ratelimit_{name.lower()}"
    return value


_LOGIN, _INVOICE, _MISSES, _PAY, _BIK, _WEBHOOK = map(
    _setting, ("LOGIN", "INVOICE", "INVOICE_MISSES", "PAY", "BIK", "WEBHOOK")
)


def _is_miss(response) -> bool:
    return response.status_code == 404


def _token_is_known() -> bool:
    return token_is_known((request.view_args or {}).get("token"))


def _token_is_unknown() -> bool:
    return not _token_is_known()


def _address_and_invoice() -> str:
    # Per invoice as well as per address: customers behind one carrier address (CGNAT), or all
    # of them behind a proxy bikshop was not told about, never share one allowance. The token
    # is hashed so the limiter's storage (Redis) holds no invoice links.
    token = (request.view_args or {}).get("token") or ""
    return f"{client_address()}/{hashlib.sha256(token.encode()).hexdigest()[:16]}"


def configure(app: Flask) -> None:
    """Point the limiter at Redis or memory, then attach the limits to their routes."""
    config = app.config
    config.setdefault("RATELIMIT_STORAGE_URI", config["REDIS_URL"] or "memory://")
    config.setdefault("RATELIMIT_KEY_PREFIX", "bikshop")
    config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # A Redis outage must not take the shop down: let requests through and log it.
    config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    limiter.init_app(app)
    wanted: dict[str, list] = {}
    for rule in app.url_map.iter_rules():
        wanted.setdefault(rule.endpoint, []).extend(_limits_for(rule, config))
    for endpoint, limits in wanted.items():
        view = app.view_functions[endpoint]
        for limit in dict.fromkeys(limits):  # one endpoint may have several rules
            view = limit(view)
        app.view_functions[endpoint] = view
    _hooks_only_on(app, {endpoint for endpoint, limits in wanted.items() if limits})


def _hooks_only_on(app: Flask, endpoints: set[str]) -> None:
    """Run Flask-Limiter's app-wide request hooks only for ``endpoints``.

    Flask-Limiter checks every request against its registry, on the way out looks for
    deductions and headers, and at teardown resets its per-request context, even where no
    limit applies: about 0.1 ms a request, a tenth of a getOrder. bikshop has no default limits
    (config.py has no setting for them), so the three hooks move to the blueprints that have a
    limited route (Flask runs a blueprint's hooks only for its own routes), gated there to the
    limited routes: Bik's calls and the health checks run none of them. They keep their turn:
    the check after the app's own before-request hooks and before the blueprint's, the other
    two after the blueprint's hooks and before the app's. The set is kept on the app, for
    tests.
    """
    app.extensions["bikshop.rate_limited"] = frozenset(endpoints)
    blueprints = {endpoint.rpartition(".")[0] for endpoint in endpoints}
    gated = []
    before = app.before_request_funcs.get(None, [])
    for hook in [h for h in before if h == limiter._check_request_limit]:  # none when off
        before.remove(hook)
        gated.append((app.before_request_funcs, _gated(hook, endpoints)))
    after = app.after_request_funcs.get(None, [])
    for hook in [h for h in after if isinstance(h, partial) and limiter in h.args]:
        after.remove(hook)
        injected = _retry_after_only_when_limited(hook)
        gated.append((app.after_request_funcs, _gated(injected, endpoints, passthrough=True)))
    teardown = app.teardown_request_funcs.get(None, [])
    for hook in [h for h in teardown if getattr(h, "__self__", None) is limiter]:
        teardown.remove(hook)  # resets the per-request context the check made
        gated.append((app.teardown_request_funcs, _gated(hook, endpoints)))
    for funcs, hook in gated:
        for blueprint in blueprints:
            # At the head: before-request hooks run in order (so it runs first), after-request
            # and teardown hooks in reverse (so it runs last of the blueprint's).
            funcs.setdefault(blueprint, []).insert(0, hook)


def _retry_after_only_when_limited(inject_headers):
    """Flask-Limiter's header hook, with ``Retry-After`` left to the answers it belongs on.

    The limiter sets ``Retry-After`` (its window's reset) on every answer of a limited route:
    a 200 or a redirect would tell a client to wait, and a view's own value (30 s on the
    "Razorpay is down" 503) would be replaced. Only a 429 keeps the limiter's; any other
    answer keeps what its view said, or none. The ``X-RateLimit-*`` headers stay.
    """

    def inject(response):
        own = response.headers.get("Retry-After")
        response = inject_headers(response)
        if response.status_code != 429:
            response.headers.pop("Retry-After", None)
            if own is not None:
                response.headers["Retry-After"] = own
        return response

    return inject


def _gated(hook, endpoints: set[str], *, passthrough: bool = False):
    def gated(*args):
        if request.endpoint in endpoints:
            return hook(*args)
        return args[0] if passthrough else None

    gated.__name__ = f"limited_only_{getattr(hook, '__name__', 'hook')}"
    return gated


# Flask answers HEAD with the GET view: a HEAD tells whether a token exists just as well.
_READS = ["GET", "HEAD"]


def _guesses(methods: list[str]):
    """The one guessing limit every invoice route shares: unknown tokens (404s) only."""
    return limiter.shared_limit(
        _MISSES,
        scope="invoice-misses",
        methods=methods,
        exempt_when=_token_is_known,
        deduct_when=_is_miss,
        error_message=_message,
    )


def _limits_for(rule: Rule, config) -> list:
    path, methods = rule.rule, rule.methods or set()
    found = []

    def add(name: str, make):
        if config[f"RATELIMIT_{name}"]:
            found.append(make())

    if path.startswith("/invoice/<") and "POST" in methods and path.endswith("/pay"):
        # Like the page's: per address and invoice, so customers behind one carrier address
        # (CGNAT) never share, or exhaust, each other's Pay taps; an unknown token is a guess.
        add(
            "PAY",
            lambda: limiter.limit(
                _PAY,
                key_func=_address_and_invoice,
                methods=["POST"],
                exempt_when=_token_is_unknown,
                error_message=_message,
            ),
        )
        add("INVOICE_MISSES", lambda: _guesses(["POST"]))
    elif path.startswith("/invoice/<") and "GET" in methods:
        # Two limits that never meet: an invoice that exists counts only against its own
        # allowance, and only unknown tokens count as guesses, so a guesser sharing a
        # customer's address (CGNAT) never locks the customer out of a real invoice.
        add(
            "INVOICE",
            lambda: limiter.limit(
                _INVOICE,
                key_func=_address_and_invoice,
                methods=_READS,
                exempt_when=_token_is_unknown,
                error_message=_message,
            ),
        )
        add("INVOICE_MISSES", lambda: _guesses(_READS))
    elif path == "/admin/login" and "POST" in methods:
        add("LOGIN", lambda: limiter.limit(_LOGIN, methods=["POST"], error_message=_message))
    elif path.startswith("/bik/"):
        add("BIK", lambda: limiter.limit(_BIK, error_message=_message))
    elif path.startswith("/webhooks/"):
        add("WEBHOOK", lambda: limiter.limit(_WEBHOOK, error_message=_message))
    return found
