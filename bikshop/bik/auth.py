"""Bik's four auth schemes: parsing the operator's spec and checking a request against it."""

from __future__ import annotations

import base64
import binascii
import difflib
import hmac
import re
from dataclasses import dataclass

# Letters, digits and "-": nginx drops a header whose name holds anything else (its
# ignore_invalid_headers), and gunicorn one with "_", so such a header would never reach bikshop.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")
_SCHEMES = ("none", "bearer", "apikey", "basic")
# A token sent as it is (bearer, apikey) is visible ASCII: a header arrives decoded as latin-1,
# so "é" or "€" could never match. Basic's user and password travel base64-encoded, so any
# printable text does (RFC 7617: as UTF-8; a sender's latin-1 is read too).
_SECRET = re.compile(r"^[\x21-\x7e]+( +[\x21-\x7e]+)*$")
# gunicorn refuses a header line longer than its limit_request_field_size (name, ": ", value and
# the CRLF), 8190 bytes by default, which gunicorn.conf.py keeps; nginx's 8 KiB buffer is a few
# bytes roomier. Every request with a longer credential would be a 431, so it never starts.
MAX_HEADER_LINE = 8190


# What Bik's credential on each endpoint keeps strangers from doing (check-config and check-bik
# say it of an endpoint without one). Order ids are sequential: an open getOrder reads them all.
OPEN_TO = {
    "placeOrder": "place orders",
    "getOrder": "read every order, with its customer's phone, email and address",
}


class AuthSpecError(ValueError):
    """The auth spec string is malformed."""


@dataclass(frozen=True)
class AuthSpec:
    """What Bik must present: a scheme and its credentials (never logged or shown)."""

    scheme: str  # none | bearer | apikey | basic
    header: str = ""
    token: str = ""
    user: str = ""
    password: str = ""

    def __repr__(self) -> str:  # keep credentials out of logs and tracebacks
        return f"AuthSpec(scheme={self.scheme!r}, header={self.header!r})"

    def headers(self) -> dict[str, str]:
        """The headers a client sends to pass this check (used by check-bik and tests)."""
        if self.scheme == "bearer":
            return {"Authorization": f"Bearer {self.token}"}
        if self.scheme == "apikey":
            return {self.header: self.token}
        if self.scheme == "basic":
            raw = f"{self.user}:{self.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
        return {}

    def challenge(self) -> str | None:
        """The WWW-Authenticate a 401 carries (RFC 9110 asks every 401 for one): the scheme
        only, the same whatever was wrong. ``ApiKey`` is no registered scheme, but names what
        to send; its header name is in /openapi.json already, so not repeated here."""
        if self.scheme == "none":
            return None
        if self.scheme == "basic":  # RFC 7617: the user and password are read as UTF-8
            return 'Basic realm="bikshop", charset="UTF-8"'
        return f'{"Bearer" if self.scheme == "bearer" else "ApiKey"} realm="bikshop"'

    def describe(self) -> str:
        """How to fill Bik's onboarding screen for this scheme, with the credentials."""
        if self.scheme == "bearer":
            return f"Bearer token: {self.token}"
        if self.scheme == "apikey":
            return f"API key: header {self.header}, value {self.token}"
        if self.scheme == "basic":
            return f"Basic auth: username {self.user}, password {self.password}"
        return "None (no credentials)"


# Headers clients, proxies and HTTP itself fill in: a key sent in one would never arrive alone
# (Content-Type must say application/json; Host names the server; proxies rewrite the rest).
# Every header deploy/bikshop.nginx.conf sets or blanks is among them (tests/test_config.py
# reads the file to hold that), since nginx would replace Bik's key on every call.
_HTTP_OWN_HEADERS = frozenset(
    [
        "accept",
        "accept-encoding",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "cookie",
        "expect",
        "host",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "via",
        "forwarded",
        "x-real-ip",
        "x-request-id",
    ]
)
# And any member of the X-Forwarded- family, whichever a proxy in front happens to set or drop
# (Forwarded is one header, RFC 7239: a Forwarded-Token of the brand's own is no proxy's).
_PROXY_HEADER_PREFIX = "x-forwarded-"


def _set_by_http(header: str) -> bool:
    name = header.lower()
    return name in _HTTP_OWN_HEADERS or name.startswith(_PROXY_HEADER_PREFIX)


def parse_auth_spec(raw: str) -> AuthSpec:
    """Parse ``none``, ``bearer:<token>``, ``apikey:<Header>:<token>``, ``basic:<user>:<pw>``."""
    raw = raw.strip()
    scheme, _, rest = raw.partition(":")
    scheme = scheme.lower()
    if scheme == "none" and not rest:
        return AuthSpec("none")
    if scheme == "bearer":
        _check_ends("the bearer token", rest)
        if not rest or any(c.isspace() for c in rest):
            raise AuthSpecError("bearer needs a token without spaces: bearer:<token>")
        _check_secrets("the bearer token", rest)
        return _fits(AuthSpec("bearer", token=rest), "the bearer token is")
    if scheme == "apikey":
        header, _, token = rest.partition(":")
        if "_" in header:
            raise AuthSpecError(
                "the apikey header name cannot contain '_' (gunicorn and nginx drop such "
                "headers): use '-', e.g. X-Brand-Key"
            )
        if not header or not token:
            raise AuthSpecError(
                "apikey needs a header name and a token: apikey:<Header-Name>:<token>"
            )
        if not _HEADER_NAME.match(header):  # not echoed: a slip may have put the token there
            raise AuthSpecError(
                "the apikey header name may hold only letters, digits and '-', no spaces "
                "(nginx drops any other header): apikey:<Header-Name>:<token>, e.g. X-Brand-Key"
            )
        if header.lower() == "authorization":
            # Bik's "API key" in Authorization sends the bare key (Authorization: sk_abc),
            # which neither bearer (wants "Bearer sk_abc") nor basic could ever match.
            raise AuthSpecError(
                "apikey cannot use the Authorization header: in Bik, either pick Bearer token "
                "for this endpoint and set bearer:<token>, or keep API key with a header name "
                "of your own such as X-Brand-Key and set apikey:X-Brand-Key:<token>"
            )
        if _set_by_http(header):
            raise AuthSpecError(
                f"apikey cannot use {header}: HTTP itself or the proxy in front sets that "
                "header; pick a name of your own, e.g. X-Brand-Key"
            )
        _check_ends("the apikey token", token)
        _check_secrets("the apikey token", token)
        return _fits(AuthSpec("apikey", header=header, token=token), "the apikey token is")
    if scheme == "basic":
        user, sep, password = rest.partition(":")
        if not sep or not user or not password:
            raise AuthSpecError("basic needs a user and a password: basic:<user>:<password>")
        if not all(_printable_text(secret) for secret in (user, password)):
            raise AuthSpecError(
                "the basic user and password must be printable text, without control "
                "characters or spaces at either end"
            )
        spec = AuthSpec("basic", user=user, password=password)
        return _fits(spec, "the basic user and password are")
    # The scheme itself is never echoed: without a ':' it is the whole value, a secret maybe.
    close = difflib.get_close_matches(scheme, _SCHEMES, n=1, cutoff=0.6)
    meant = f"did you mean {close[0]}? " if close else ""
    raise AuthSpecError(
        f"{meant}use none, bearer:<token>, apikey:<Header>:<token> or basic:<user>:<pass>"
    )


def _fits(spec: AuthSpec, what: str) -> AuthSpec:
    """``spec``, if the header carrying it fits in one header line gunicorn accepts."""
    ((name, value),) = spec.headers().items()
    if len(f"{name}: {value}\r\n".encode()) <= MAX_HEADER_LINE:
        return spec
    room = MAX_HEADER_LINE - len(f"{name}: \r\n")  # for the value
    if spec.scheme == "basic":
        # "Basic " and the base64 of "user:password": 4 characters for every 3 bytes.
        most = (room - len("Basic ")) // 4 * 3 - len(":")
        longest = f"{most} bytes (as UTF-8) together: base64 adds a third"
    else:
        longest = f"{room - len(value) + len(spec.token)} characters"
    raise AuthSpecError(
        f"{what} longer than {longest}, and gunicorn and nginx refuse a header line over 8 KiB "
        "(every call would be a 431): use a shorter one, 32 to 64 characters is plenty"
    )


def _check_ends(what: str, secret: str) -> None:
    # A space typed after the ':' (bearer: abc) would be part of the token, and Bik never sends it.
    if secret != secret.strip():
        raise AuthSpecError(
            f"{what} starts with a space: write it right after the ':', with no spaces at "
            "either end"
        )


def _check_secrets(what: str, *secrets: str) -> None:
    # The message never shows the secret itself.
    if not all(_SECRET.match(secret) for secret in secrets):
        raise AuthSpecError(
            f"{what} must be printable ASCII (letters, digits, punctuation): "
            "non-ASCII or control characters never arrive intact in an HTTP header"
        )


def _printable_text(secret: str) -> bool:
    return secret.isprintable() and secret == secret.strip()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


def is_authorized(spec: AuthSpec, headers) -> bool:
    """True when ``headers`` carry the credentials ``spec`` demands; constant-time comparisons."""
    if spec.scheme == "none":
        return True
    if spec.scheme == "apikey":
        return _same(headers.get(spec.header, ""), spec.token)
    scheme, _, credentials = headers.get("Authorization", "").strip().partition(" ")
    credentials = credentials.strip()
    if spec.scheme == "bearer":
        return scheme.lower() == "bearer" and _same(credentials, spec.token)
    if scheme.lower() != "basic":
        return False
    try:
        raw = base64.b64decode(credentials, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:  # a sender that encodes as latin-1 (RFC 7617 asks for UTF-8)
        decoded = raw.decode("latin-1")
    user, _, password = decoded.partition(":")
    # Both comparisons always run, so timing does not tell which part was wrong.
    return _same(user, spec.user) & _same(password, spec.password)


def security_requirement(spec: AuthSpec, schemes: dict[str, dict]) -> list[dict] | None:
    """The OpenAPI security requirement for ``spec``, naming one of the document's ``schemes``
    (found by what it describes, not by its name): ``[]`` for none, ``None`` if no scheme
    describes it."""
    if spec.scheme == "none":
        return []
    for name, scheme in schemes.items():
        if spec.scheme == "apikey":
            described = scheme.get("type") == "apiKey" and scheme.get("in") == "header"
            described = described and scheme.get("name", "").lower() == spec.header.lower()
        else:
            described = scheme.get("type") == "http" and scheme.get("scheme") == spec.scheme
        if described:
            return [{name: []}]
    return None
