"""flask-smorest wired to bikshop: exact-money JSON parsing and the one error shape."""

from __future__ import annotations

from copy import deepcopy

from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import fields
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import RequestEntityTooLarge

from bikshop import jsonio
from bikshop.errors import UNREADABLE_BODY, ErrorEnvelope, http_error_response


class BikParser(FlaskParser):
    """webargs' Flask parser, reading JSON bodies with Decimal money and clear 400s."""

    DEFAULT_VALIDATION_STATUS = 422

    def load_json(self, req, schema):
        if not is_json_request(req):
            return core.missing
        body = req.get_data(cache=True)
        _check_whole(req, body)
        if not body.strip():
            framed = req.content_length is not None or "chunked" in req.headers.get(
                "Transfer-Encoding", ""
            )
            hint = "" if framed else " (with a Content-Length, or chunked: none was given)"
            abort(400, message=f"The request body is empty: send a JSON object{hint}")
        try:
            document = jsonio.loads(body)
        except ValueError as exc:
            abort(400, message=f"The request body is not valid JSON: {_reason(exc)}")
        if not isinstance(document, dict):
            kind = _JSON_KINDS.get(type(document), "a number")
            abort(422, message=f"The request body must be a JSON object, not {kind}")
        return document


def _check_whole(req, body: bytes) -> None:
    """Refuse a body that is not all there, or is more than the limit.

    gunicorn marks its input as terminated, so Werkzeug checks neither end: a body shorter
    than its Content-Length (the client closed its side early) reads as a complete one, and a
    chunked body is cut at MAX_CONTENT_LENGTH without complaint. A chunked body of exactly
    the limit is allowed; one more byte on the connection's stream is a 413."""
    expected = req.content_length
    if expected is not None:
        if len(body) < expected:
            abort(400, message=UNREADABLE_BODY)
    elif len(body) == req.max_content_length and req.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


_JSON_KINDS = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}


def _reason(exc: ValueError) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "…"


class Blueprint(SmorestBlueprint):
    """A flask-smorest blueprint using :class:`BikParser`.

    ``security(app, spec, endpoint)``, when given, returns an operation's OpenAPI security
    requirement for the app being set up (``[]`` for none, ``None`` to leave it out): auth is
    chosen per deployment, and flask-smorest builds each operation's document at import.
    """

    ARGUMENTS_PARSER = BikParser()

    def __init__(self, *args, security=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._security = security

    def register_views_in_doc(self, api, app, spec, *, name, parameters):
        if self._security is None:
            return super().register_views_in_doc(api, app, spec, name=name, parameters=parameters)
        shared = self._docs
        self._docs = deepcopy(shared)  # this app's requirements only; the next app starts over
        try:
            for endpoint, methods in self._docs.items():
                requirement = self._security(app, spec, endpoint)
                if requirement is None:
                    continue
                for method, operation in methods.items():
                    if method != "parameters":
                        operation.setdefault("manual_doc", {})["security"] = requirement
            return super().register_views_in_doc(api, app, spec, name=name, parameters=parameters)
        finally:
            self._docs = shared


class BikshopApi(Api):
    """flask-smorest's Api, answering every HTTP error in bikshop's error shape."""

    ERROR_SCHEMA = ErrorEnvelope  # the documented default error is the one we send

    def _register_error_handlers(self):
        pass  # bikshop.errors registers app-wide handlers in create_app

    def handle_http_exception(self, error):
        return http_error_response(error)


# apispec documents a nullable nested object as ``anyOf: [Address, {type: object, nullable:
# true}]`` (OpenAPI 3.0 has no null type): the second branch takes any object at all, so a
# validator or generated client checked nothing in an address. Made to take null alone.
_ANY_OBJECT_OR_NULL = {"type": "object", "nullable": True}
_NULL_ONLY = {"type": "object", "nullable": True, "enum": [None]}


def _nested_or_null(self, field, ret, **kwargs) -> dict:
    """apispec attribute function: a nullable ``Nested`` is its schema, or null."""
    if isinstance(field, fields.Nested) and field.allow_none and "anyOf" in ret:
        return {
            "anyOf": [
                _NULL_ONLY if branch == _ANY_OBJECT_OR_NULL else branch for branch in ret["anyOf"]
            ]
        }
    return {}


def document_nullable_nested(api: Api) -> None:
    """Install :func:`_nested_or_null` on the spec ``api.init_app`` has just made."""
    api.ma_plugin.converter.add_attribute_function(_nested_or_null)
