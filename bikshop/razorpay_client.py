"""The one door to Razorpay: the official SDK with a timeout on every call, its errors mapped to
ours, and the two signature checks (webhook body, customer redirect) done over exact bytes."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import razorpay
import requests
from flask import current_app
from razorpay.errors import BadRequestError, GatewayError, ServerError
from urllib3.exceptions import NewConnectionError

from bikshop.errors import ApiError

log = logging.getLogger(__name__)


def _sdk_print(*args, **kwargs) -> None:
    """The SDK print()s its connection trouble ("Connection failed.") to stdout, which is a
    command's output (reconcile-payments) or gunicorn's console: it goes to the log instead.
    ``_call`` logs each failure itself, so this is debug detail."""
    log.debug("razorpay SDK: %s", " ".join(str(arg) for arg in args))


# Module globals come before builtins, so this reaches only the SDK client's own print calls.
razorpay.client.print = _sdk_print

DUPLICATE_REFERENCE = "reference id already attempted"


class RazorpayError(Exception):
    """Razorpay could not do what we asked; nothing on our side was changed."""


class RazorpayUnavailable(RazorpayError):
    """Razorpay is down, slow beyond our timeout, or failed on its side: retry later.

    ``reached`` is False only when the request certainly never left (no connection could be
    made), so Razorpay did nothing. Otherwise it may have done what was asked and its answer
    was lost: a timeout, a 5xx, a proxy's error page.
    """

    def __init__(self, message: str, *, reached: bool = True):
        super().__init__(message)
        self.reached = reached


class RazorpayRejected(RazorpayError):
    """Razorpay refused the request (bad input, bad keys, wrong state); ``str()`` says why."""

    @property
    def duplicate_reference(self) -> bool:
        return DUPLICATE_REFERENCE in str(self).lower()


class GatewayFailure(ApiError):
    """What a door answers when Razorpay failed or refused: 503 when worth retrying, else 502."""

    def __init__(self, exc: RazorpayError, doing: str):
        retry = isinstance(exc, RazorpayUnavailable)
        super().__init__(
            503 if retry else 502,
            f"Razorpay could not {doing} ({exc}); nothing was changed."
            + (" Please try again in a minute." if retry else ""),
            code="payment_gateway_unavailable" if retry else "payment_gateway_refused",
        )
        self.retry = retry


# When every Razorpay call of the work in hand must be over (time.monotonic()), or None.
_deadline: ContextVar[float | None] = ContextVar("razorpay_deadline", default=None)


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Every Razorpay call inside the block is answered within ``seconds`` of its start, all
    together, whatever ``BIKSHOP_RAZORPAY_TIMEOUT`` allows one call: a call with no time
    left fails at once as ``RazorpayUnavailable`` (nothing sent). For work with a deadline of
    its own: Razorpay counts a webhook not answered within 5 s as failed."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


class _TimeoutSession(requests.Session):
    """A session that never waits forever: the SDK sets no timeout of its own."""

    def __init__(self, timeout: float):
        super().__init__()
        self.default_timeout = (min(3.05, timeout), timeout)  # (connect, read)
        self.last_status: int | None = None

    def request(self, method, url, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
            deadline = _deadline.get()
            if deadline is not None:  # ``_call`` checked that some time is left
                left = max(deadline - time.monotonic(), 0.01)
                kwargs["timeout"] = tuple(min(part, left) for part in self.default_timeout)
        response = super().request(method, url, **kwargs)
        self.last_status = response.status_code  # the SDK's errors drop it (_call reads it)
        return response


def is_configured() -> bool:
    """True when API keys are set, so bikshop can make payment links."""
    return bool(current_app.config["RAZORPAY_KEY_ID"] and current_app.config["RAZORPAY_KEY_SECRET"])


def keys_fingerprint() -> str:
    """A short hash of the keys and API address in use: a refusal recorded under it (a wrong
    key, say) stands until the settings change, and the invoice's render version changes with
    it. One-way, so it can be kept on the timeline and go into an ETag."""
    config = current_app.config
    settings = [
        config["RAZORPAY_KEY_ID"],
        config["RAZORPAY_KEY_SECRET"],
        config["RAZORPAY_API_URL"],
    ]
    return hashlib.sha256("\n".join(map(str, settings)).encode()).hexdigest()[:16]


def _client() -> razorpay.Client:
    config = current_app.config
    if not is_configured():
        raise RazorpayRejected("Razorpay keys are not configured")
    client = razorpay.Client(
        session=_TimeoutSession(float(config["RAZORPAY_TIMEOUT"])),
        auth=(config["RAZORPAY_KEY_ID"], config["RAZORPAY_KEY_SECRET"]),
        base_url=config["RAZORPAY_API_URL"],
    )
    client.set_app_details({"title": "bikshop", "version": "1"})
    return client


# Razorpay's rate limit: the request was turned away unread, so it is to be tried again later.
# The SDK files a 429 under BadRequestError, as it does a refusal for good (by the body's
# error code; the status is lost), and a refusal stops a payment link or a refund for good.
_TOO_MANY_REQUESTS = 429


# Less than this left before the deadline: not worth a connection.
_TOO_LITTLE_TIME = 0.2


def _call(what: str, call):
    """Run one SDK call and translate every way it can fail into our two exceptions."""
    client = _client()
    deadline = _deadline.get()
    if deadline is not None and deadline - time.monotonic() < _TOO_LITTLE_TIME:
        log.warning("razorpay not asked to %s: no time left", what)
        raise RazorpayUnavailable("no time was left to ask Razorpay", reached=False)
    try:
        result = call(client)
    except BadRequestError as exc:
        if client.session.last_status == _TOO_MANY_REQUESTS:
            log.warning("razorpay rate-limited %s: %s", what, exc)
            raise RazorpayUnavailable(
                "Razorpay is busy (too many requests)", reached=False
            ) from None
        log.warning("razorpay refused %s: %s", what, exc)
        raise RazorpayRejected(str(exc) or "request refused") from None
    except (ServerError, GatewayError) as exc:
        log.error("razorpay failed %s: %s: %s", what, type(exc).__name__, exc)
        raise RazorpayUnavailable(f"Razorpay failed: {exc}") from None
    except requests.ConnectTimeout:  # before Timeout, its base: no connection, nothing sent
        log.error("razorpay unreachable on %s: no connection in time", what)
        raise RazorpayUnavailable("Razorpay could not be reached", reached=False) from None
    except requests.Timeout:
        log.error("razorpay timed out on %s", what)
        raise RazorpayUnavailable("Razorpay did not answer in time") from None
    except requests.ConnectionError as exc:
        reached = not _never_connected(exc)
        log.error("razorpay %s on %s", "dropped the connection" if reached else "unreachable", what)
        raise RazorpayUnavailable("Razorpay could not be reached", reached=reached) from None
    except (requests.RequestException, ValueError) as exc:  # e.g. an HTML error page from a proxy
        log.error("razorpay answered %s with something unreadable: %s", what, type(exc).__name__)
        raise RazorpayUnavailable("Razorpay gave an unreadable answer") from None
    if not isinstance(result, dict):
        raise RazorpayUnavailable("Razorpay gave an unexpected answer")
    return result


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when no connection was made (refused, no route, no DNS), so nothing was sent; a
    connection reset or closed after the request went out may have been acted on."""
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)


def create_link(data: dict) -> dict:
    """Create a payment link (POST /v1/payment_links)."""
    return _call(f"create link {data.get('reference_id')}", lambda c: c.payment_link.create(data))


def check_keys() -> None:
    """Ask Razorpay for one payment link, which changes nothing: raises as any call would
    when it refuses the keys (RazorpayRejected) or cannot be asked (RazorpayUnavailable)."""
    _call("a keys check (listing one link)", lambda c: c.payment_link.all({"count": 1}))


def fetch_link(razorpay_id: str) -> dict:
    """The payment link as Razorpay has it now."""
    return _call(f"fetch {razorpay_id}", lambda c: c.payment_link.fetch(razorpay_id))


def links_by_reference(reference_id: str) -> list[dict]:
    """Every payment link Razorpay holds with this ``reference_id`` (normally one)."""
    found = _call(
        f"list links {reference_id}",
        lambda c: c.payment_link.all({"reference_id": reference_id}),
    )
    return [link for link in found.get("payment_links") or [] if isinstance(link, dict)]


def cancel_link(razorpay_id: str) -> dict:
    """Cancel an unpaid payment link."""
    return _call(f"cancel {razorpay_id}", lambda c: c.payment_link.cancel(razorpay_id))


def refund_payment(razorpay_payment_id: str, paise: int, *, receipt: str, key: str) -> dict:
    """Ask Razorpay to refund ``paise`` of a captured payment; answers the refund entity.

    ``key`` goes in Razorpay's ``X-Refund-Idempotency`` header: asked again with the same key
    and body (after a lost answer), Razorpay answers the refund it made instead of a second one.
    """
    return _call(
        f"refund {razorpay_payment_id}",
        lambda c: c.payment.refund(
            razorpay_payment_id,
            {"amount": paise, "receipt": receipt},
            headers={"X-Refund-Idempotency": key},
        ),
    )


def payment_refunds(razorpay_payment_id: str) -> list[dict]:
    """Every refund Razorpay holds for the payment (GET /v1/payments/<id>/refunds)."""
    found = _call(
        f"list refunds {razorpay_payment_id}",
        lambda c: c.payment.fetch_multiple_refund(razorpay_payment_id, {"count": 100}),
    )
    return [item for item in found.get("items") or [] if isinstance(item, dict)]


def fetch_refund(razorpay_refund_id: str) -> dict:
    """The refund as Razorpay has it now (GET /v1/refunds/<id>)."""
    return _call(f"fetch {razorpay_refund_id}", lambda c: c.refund.fetch(razorpay_refund_id))


def hmac_hex(secret: str, message: bytes) -> str:
    """Lowercase hex HMAC-SHA256, the form of both Razorpay signatures."""
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_signature_valid(raw_body: bytes, signature: str | None, secrets: list[str]) -> bool:
    """Does ``signature`` match the raw body under any of ``secrets`` (current, then previous)?

    The exact received bytes are hashed: re-serialised JSON would not match. The SDK's own
    check wants ``str`` and raises on a missing header, so it is done here instead.
    """
    if not signature or not isinstance(raw_body, bytes):
        return False
    candidate = signature.strip().lower().encode()
    return any(
        hmac.compare_digest(hmac_hex(secret, raw_body).encode(), candidate)
        for secret in secrets
        if secret
    )


def callback_signature_valid(
    *, link_id: str, reference_id: str, status: str, payment_id: str, signature: str, secret: str
) -> bool:
    """The redirect's ``razorpay_signature``: HMAC of ``link|reference|status|payment``."""
    if not (link_id and status and payment_id and signature and secret):
        return False
    message = f"{link_id}|{reference_id}|{status}|{payment_id}".encode()
    # Hex in either case, as the webhook's check reads it (Razorpay sends lower case).
    candidate = signature.strip().lower().encode()
    return hmac.compare_digest(hmac_hex(secret, message).encode(), candidate)
