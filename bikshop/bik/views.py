"""POST /bik/placeOrder and POST /bik/getOrder, exactly to Bik's contract."""

from __future__ import annotations

from flask import current_app, request

from bikshop.api import Blueprint
from bikshop.bik.auth import is_authorized, security_requirement
from bikshop.bik.dump import compile_dumper
from bikshop.bik.schemas import BikOrderOut, GetOrderRequest, OrderEnvelope, PlaceOrderRequest
from bikshop.errors import ApiError, ErrorEnvelope
from bikshop.links import request_host
from bikshop.services import orders

_ENDPOINT_AUTH = {"bik.place_order": "placeOrder", "bik.get_order": "getOrder"}


def _documented_security(app, spec, endpoint: str) -> list[dict] | None:
    """The OpenAPI security requirement of ``endpoint``: the scheme this deployment demands
    there (``BIKSHOP_BIK_AUTH`` or its per-endpoint override), ``[]`` for none."""
    name = _ENDPOINT_AUTH.get(f"bik.{endpoint}")
    if name is None:
        return None
    return security_requirement(
        app.config["BIK_AUTH_SPECS"][name], spec.components.security_schemes
    )


blp = Blueprint(
    "bik",
    __name__,
    url_prefix="/bik",
    description="The two endpoints Bik calls at checkout (Non-Shopify Ordering).",
    security=_documented_security,
)


@blp.before_request
def check_auth_and_content_type():
    """Credentials first (401 tells nothing else), then a JSON body (415)."""
    # The request and app themselves, once: each ``request.x`` through Flask's proxy costs about
    # a microsecond (an AttributeError raised and caught inside Werkzeug's LocalProxy).
    current = request._get_current_object()
    endpoint = _ENDPOINT_AUTH.get(current.endpoint or "")
    if endpoint is None or current.method == "OPTIONS":
        return None  # Flask answers OPTIONS itself (Allow: POST, OPTIONS); no body, no data
    config = current_app._get_current_object().config
    spec = config["BIK_AUTH_SPECS"][endpoint]
    if not is_authorized(spec, current.headers):
        raise _Unauthorized({"WWW-Authenticate": spec.challenge()})
    if current.mimetype != "application/json":
        raise ApiError(
            415,
            f"Send the body as JSON with Content-Type: application/json "
            f"(got {current.mimetype or 'no content type'})",
        )
    # Parameters and encodings are rare: look for them before paying for parsing them.
    if ";" in current.environ.get("CONTENT_TYPE", ""):  # current.content_type, for less
        charset = current.mimetype_params.get("charset", "utf-8").lower()
        if charset not in _UTF8_READABLE:
            raise ApiError(415, f"Send the body as UTF-8 JSON (got charset={charset})")
    encoding = current.environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding not in ("", "identity"):
        raise ApiError(415, f"Send the body uncompressed (got Content-Encoding: {encoding[:40]})")
    if not config["PUBLIC_URL"]:
        request_host(current)  # invoiceUrl is made from it: checked before anything is stored
    return None


# JSON is UTF-8 (RFC 8259); a body labelled ASCII is UTF-8 as well.
_UTF8_READABLE = frozenset(("utf-8", "utf8", "us-ascii", "ascii"))


class _Unauthorized(ApiError):
    def __init__(self, headers: dict):
        super().__init__(401, "Missing or invalid credentials")
        self._headers = headers

    def get_headers(self, environ=None, scope=None):
        return list(self._headers.items())


_ERRORS = {
    400: "The body is not JSON, is empty, or is nested too deeply",
    401: "Missing or invalid credentials",
    413: "The body is larger than 1 MiB",
    415: "The body is not sent as application/json",
    422: "The body failed validation; `fields` names each problem",
    503: "The database is unavailable; nothing was stored: retry (after Retry-After seconds)",
}


def _documents_errors(*extra):
    """The error answers of an endpoint (those both share, and ``extra`` (status, description)
    pairs), for the OpenAPI document only.

    flask-smorest's ``alt_response`` documents by wrapping the view in one more function per
    status, each run on every request; this applies them all and keeps only the document they
    build, on the view itself.
    """

    def decorate(view):
        documented = view
        for status, description in (*_ERRORS.items(), *extra):
            documented = blp.alt_response(status, schema=ErrorEnvelope, description=description)(
                documented
            )
        view._apidoc = documented._apidoc
        return view

    return decorate


# strict_slashes=False: a URL registered in Bik with a trailing slash must work too.
@blp.route("/placeOrder", methods=["POST"], endpoint="place_order", strict_slashes=False)
# Schema instances, not classes: webargs would build a fresh schema (and its nested ones)
# for every request from a class.
@blp.arguments(PlaceOrderRequest())
@blp.response(
    200,
    OrderEnvelope,
    description="The stored order (new, or the same draft again)",
    headers={
        "Idempotent-Replayed": {
            "description": "Sent as `true` when this draft was already placed: the order is "
            "the one stored then, as it is now",
            "schema": {"type": "string", "enum": ["true"]},
        }
    },
)
@_documents_errors((409, "Same draftOrderId, different body"))
def place_order(body):
    """Persist a fully priced order; idempotent on draftOrderId."""
    placed = orders.place_order(body, request._get_current_object().get_data(as_text=True))
    answer = _answer(placed.order)
    if not placed.created:
        answer.headers["Idempotent-Replayed"] = "true"
    return answer


@blp.route("/getOrder", methods=["POST"], endpoint="get_order", strict_slashes=False)
@blp.arguments(GetOrderRequest())
@blp.response(200, OrderEnvelope, description="The order's current state")
@_documents_errors((404, "No order with that id"))
def get_order(body):
    """Return the order's current state."""
    order = orders.order_snapshot(body["orderId"])
    if order is None:
        raise ApiError(
            404,
            f"No order with id {body['orderId']!r}",
            fields=[{"field": "orderId", "message": "unknown order"}],
        )
    return _answer(order)


# OrderEnvelope (`@blp.response` above) documents the answer; `_answer` sends the same thing
# through the compiled BikOrderOut, at a fraction of Schema.dump's cost. flask-smorest passes a
# Response through as it is.
_dump_order = compile_dumper(BikOrderOut())


def _answer(order):
    return current_app._get_current_object().json.response({"order": _dump_order(order)})
