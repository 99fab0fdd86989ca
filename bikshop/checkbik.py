"""``check-bik``: play Bik's side of the contract against any running deployment."""

from __future__ import annotations

import copy
import dataclasses
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import click
import requests

from bikshop.bik.auth import OPEN_TO, AuthSpec, AuthSpecError, parse_auth_spec
from bikshop.models.orders import CONTRACT_CHECK_TAG

# Bik's published sample placeOrder body (reference/bik-contract.md).
SAMPLE_ORDER = {
    "draftOrderId": "nb_1715200000_a1b2c3d4",
    "paymentPending": True,
    "order": {
        "id": "nb_1715200000_a1b2c3d4",
        "name": "",
        "phoneNumber": "+919876543210",
        "email": "buyer@example.com",
        "items": [
            {
                "productId": 6862852391049,
                "variantId": 40946134352009,
                "name": "Skin Renew Cream",
                "variantName": "Default",
                "quantity": 2,
                "price": 499,
            }
        ],
        "subTotal": 998,
        "shippingCharge": 49,
        "discount": 100,
        "total": 947,
        "currency": "",
        "address": {
            "firstName": "Bik",
            "lastName": "Tester",
            "address1": "Bik Office, HSR Layout, Sector 6",
            "city": "Bengaluru",
            "country": "India",
            "countryCode": "IN",
            "zip": "560102",
            "phoneNumber": "+919876543210",
        },
        "tags": "ordered_via_bik",
    },
}

# The guide's three tables (seeds/non-shopify-ordering-guide.txt): each field and the JSON
# types it may have. A number is int or float, never true/false; ids are whole numbers.
_NUMBER, _ID = (int, float), (int,)
_NULL = type(None)
BIK_ORDER_FIELDS = {
    "id": (str,),
    "name": (str,),
    "status": (str,),
    "paymentStatus": (str,),
    "items": (list,),
    "total": _NUMBER,
    "subTotal": _NUMBER,
    "shippingCharge": _NUMBER,
    "discount": _NUMBER,
    "currency": (str,),
    "address": (dict, _NULL),
    "phoneNumber": (str,),
    "email": (str,),
    "invoiceUrl": (str, _NULL),
}
BIK_ITEM_FIELDS = {
    "name": (str,),
    "variantName": (str,),
    "variantId": _ID,
    "productId": _ID,
    "quantity": _NUMBER,
    "price": _NUMBER,
    "image": (str, _NULL),
}
BIK_ADDRESS_FIELDS = {
    "firstName": (str,),
    "lastName": (str,),
    "address1": (str,),
    "address2": (str, _NULL),
    "city": (str,),
    "state": (str, _NULL),
    "country": (str,),
    "zip": (str,),
    "phoneNumber": (str, _NULL),
}


def _check_types(where: str, found: dict, fields: dict) -> None:
    for field, kinds in fields.items():
        value = found.get(field)
        if field not in found or isinstance(value, bool) or not isinstance(value, kinds):
            shown = repr(value) if field in found else "missing"
            names = " or ".join("null" if k is _NULL else _JSON_TYPE[k] for k in kinds)
            raise CheckFailed(f"{where}.{field} is {shown}, expected {names}")


# Each endpoint's own check-bik option and server setting, which override --auth and
# BIKSHOP_BIK_AUTH for it.
_OWN_AUTH = {
    "placeOrder": ("--place-order-auth", "BIKSHOP_BIK_PLACE_ORDER_AUTH"),
    "getOrder": ("--get-order-auth", "BIKSHOP_BIK_GET_ORDER_AUTH"),
}

_JSON_TYPE = {str: "a string", int: "a whole number", float: "a number", list: "an array",
              dict: "an object"}  # fmt: skip


class CheckFailed(Exception):
    """One contract check did not hold; the message says what Bik would have seen."""


class NoAnswer(CheckFailed):
    """The server gave no answer at all (refused, unreachable, TLS, timeout): the checks after
    it are not run, each of which would only wait and fail the same way."""


# Spellings Bik reads (reference/bik-contract.md): it answers "where is my order?" from status,
# says a payment is pending from paymentStatus, and knows these three fulfilment states.
FULFILLMENT_STATUSES = ("unfulfilled", "partial", "fulfilled")


def _check_spellings(order: dict) -> None:
    if order["status"] != order["status"].upper():
        raise CheckFailed(f"order.status is {order['status']!r}: Bik expects upper case (ORDERED)")
    if order["paymentStatus"] != order["paymentStatus"].lower():
        raise CheckFailed(
            f"order.paymentStatus is {order['paymentStatus']!r}: Bik expects lower case (pending)"
        )
    fulfillment = order.get("fulfillmentStatus")
    if fulfillment is not None and fulfillment not in FULFILLMENT_STATUSES:
        raise CheckFailed(
            f"order.fulfillmentStatus is {fulfillment!r}, expected one of "
            + ", ".join(FULFILLMENT_STATUSES)
        )
    if order["email"] != order["email"].lower():
        raise CheckFailed(f"order.email is {order['email']!r}: Bik expects it lowercased")


@dataclass
class Target:
    place_url: str
    get_url: str
    place_auth: AuthSpec
    get_auth: AuthSpec
    timeout: float
    # The option each endpoint's credentials came from: --auth, or the endpoint's own.
    options: dict[str, str] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(_OWN_AUTH, "--auth")
    )

    def expect(self, endpoint: str, body: dict, status: int) -> dict:
        """POST ``body`` to ``endpoint`` (placeOrder or getOrder) with its credentials: the JSON
        answer, if it came with ``status``."""
        url = self.place_url if endpoint == "placeOrder" else self.get_url
        return _expect(self.post(url, self.auth(endpoint), body), status, self, endpoint)

    def auth(self, endpoint: str) -> AuthSpec:
        """The credentials check-bik sends to ``endpoint``."""
        return self.place_auth if endpoint == "placeOrder" else self.get_auth

    def post(self, url: str, auth: AuthSpec, body=None, *, raw: bytes | None = None, headers=None):
        """POST as Bik does. A redirect is a failure, not followed: clients turn a redirected
        POST into a GET (301, 302) or resend it elsewhere, so Bik must be given the final URL."""
        sent = {"Content-Type": "application/json", **auth.headers(), **(headers or {})}
        try:
            response = requests.post(
                url,
                data=raw,
                json=body if raw is None else None,
                headers=sent,
                timeout=self.timeout,
                allow_redirects=False,
                auth=_as_given,
            )
        except requests.RequestException as exc:
            reason = _why_no_answer(exc, self.timeout, url)
            raise NoAnswer(f"no answer from {url}: {reason}") from None
        if response.is_redirect:
            where = response.headers.get("Location", "nowhere")
            raise CheckFailed(
                f"{url} answered {response.status_code} redirecting to {where}: "
                "register the URL it points to in Bik, not one that redirects"
            )
        return response


_NO_PROOF = "a 404 may be the URL's own (nothing there), so it proves nothing; check the URL"


# OpenSSL's words when what answered an https:// address is no TLS at all (plain http answers
# its handshake with "HTTP/1.1 400"): 1.1 and 3.0 say the first, 3.2 and later the others.
_NOT_TLS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")


def _why_no_answer(exc: requests.RequestException, timeout: float, url: str) -> str:
    """What went wrong, in a few words and with what to check, rather than urllib3's
    paragraph ("HTTPConnectionPool(...): Max retries exceeded with url: ...")."""
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError) and any(w in text for w in _NOT_TLS):
        return (
            "the server there does not speak https (plain http on that port?): use the "
            "server's https address, or http:// if that port is bikshop itself"
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return (
            "its TLS certificate is not trusted (self-signed, expired or for another name); "
            "Bik needs one a browser trusts, such as Let's Encrypt's"
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"no connection within {timeout:g} s (--timeout): is a firewall dropping it?"
    if isinstance(exc, requests.exceptions.Timeout):  # the connection was made: no firewall
        return (
            f"connected, but no answer within {timeout:g} s (--timeout): is the server (or a "
            "worker) stuck?"
        )
    if "Connection refused" in text:
        return "connection refused: is bikshop running there, and is the port right?"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "the host name does not resolve: check its spelling and DNS"
    if isinstance(exc, requests.exceptions.ConnectionError):
        closed = "the connection failed or was closed before an answer"
        if url.startswith("http://"):  # a TLS server drops what is not a TLS handshake
            return f"{closed}: if that port speaks https (nginx's 443), use an https:// address"
        return closed
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _as_given(request):
    """An auth hook that adds nothing. Without one, requests adds the user's ``~/.netrc`` entry
    for the host (or a ``user:password@`` in the URL) as Basic auth over the headers Bik sends,
    so the checks would not send what Bik sends (and "no credentials" would send some)."""
    return request


def sample_order(draft_id: str) -> dict:
    """Bik's sample body with a fresh draft id (so a check never collides with a real order)."""
    body = copy.deepcopy(SAMPLE_ORDER)
    body["draftOrderId"] = body["order"]["id"] = draft_id
    body["order"]["tags"] = f"ordered_via_bik, {CONTRACT_CHECK_TAG}"
    return body


def _json(response) -> dict:
    try:
        document = response.json()
    except ValueError:
        raise CheckFailed(f"HTTP {response.status_code} with a body that is not JSON") from None
    if not isinstance(document, dict):
        raise CheckFailed(
            f"HTTP {response.status_code} with JSON that is not an object: {response.text[:300]!r}"
        )
    return document


def _pass_auth(target: Target, endpoint: str) -> str:
    """What to do when the server refused (or wanted) credentials on ``endpoint``: pass the ones
    Bik uses there, with the option they came from and the server setting it stands for."""
    option, variable = _OWN_AUTH[endpoint]
    if target.options[endpoint] == option:
        return (
            f"pass the ones Bik will use for {endpoint} with {option} (as in the server's "
            f"{variable}, or its BIKSHOP_BIK_AUTH where that is unset)"
        )
    return (
        f"pass the ones Bik will use for {endpoint} with --auth (as in the server's "
        f"BIKSHOP_BIK_AUTH), or with {option} if the server's {variable} sets its own"
    )


# The schemes a 401's WWW-Authenticate may ask for (bikshop's three), as --auth spells them.
_ASKED = {"bearer": "Bearer", "basic": "Basic", "apikey": "ApiKey"}


def _other_scheme(response, target: Target, endpoint: str) -> str:
    """``it asks for Bearer, and --auth gives apikey: `` when the 401's WWW-Authenticate names
    another scheme than the one sent (a wrong scheme, not a wrong secret); else empty. Names
    only schemes, never what was sent."""
    asked = response.headers.get("WWW-Authenticate", "").strip().split(" ", 1)[0].lower()
    given = target.auth(endpoint).scheme
    if asked not in _ASKED or asked == given:
        return ""
    return f"it asks for {_ASKED[asked]}, and {target.options[endpoint]} gives {given}: "


def _expect(response, status: int, target: Target, endpoint: str) -> dict:
    if response.status_code == 401 and status != 401:
        raise CheckFailed(
            "the server refused the credentials (401): "
            f"{_other_scheme(response, target, endpoint)}{_pass_auth(target, endpoint)}"
        )
    if response.status_code != status:
        raise CheckFailed(
            f"expected HTTP {status}, got {response.status_code}: {response.text[:300]!r}"
        )
    return _json(response)


def _is_error_shape(response) -> bool:
    """Whether ``response`` is an error in bikshop's shape (README: API errors)."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):  # not JSON, or JSON that is not an object
        return False
    return (
        isinstance(error, dict)
        and error.get("status") == response.status_code
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
    )


def _check_bik_order(order, draft_id: str, sent: dict) -> None:
    """``order`` is a BikOrder as the guide describes it, holding what ``sent`` (the body of
    placeOrder) asked for."""
    if not isinstance(order, dict):
        raise CheckFailed("the answer has no 'order' object")
    _check_types("order", order, BIK_ORDER_FIELDS)
    if order["id"] == draft_id:
        raise CheckFailed("order.id is Bik's draft id; it must be your own order id")
    partners = order.get("partnersData")
    if not isinstance(partners, dict) or partners.get("id") != draft_id:
        raise CheckFailed(f"partnersData.id must echo the draftOrderId (got {partners!r})")
    asked = sent["order"]
    for field in ("total", "subTotal", "shippingCharge", "discount"):
        if order[field] != asked[field]:
            raise CheckFailed(f"order.{field} is {order[field]!r}, but {asked[field]!r} was sent")
    _check_spellings(order)
    if len(order["items"]) != len(asked["items"]):
        count, sent_count = len(order["items"]), len(asked["items"])
        raise CheckFailed(f"order.items has {count} items, but {sent_count} were sent")
    for index, (item, sent_item) in enumerate(zip(order["items"], asked["items"], strict=True)):
        where = f"order.items[{index}]"
        if not isinstance(item, dict):
            raise CheckFailed(f"{where} is {item!r}, expected an object")
        _check_types(where, item, BIK_ITEM_FIELDS)
        for field in ("quantity", "price", "productId", "variantId"):
            if item[field] != sent_item[field]:
                raise CheckFailed(
                    f"{where}.{field} is {item[field]!r}, but {sent_item[field]!r} was sent"
                    + (" (digits lost?)" if field.endswith("Id") else "")
                )
    if asked.get("address") is not None:
        if order["address"] is None:
            raise CheckFailed("order.address is null, but an address was sent")
        _check_types("order.address", order["address"], BIK_ADDRESS_FIELDS)
    url = order["invoiceUrl"]
    if url is not None and not url.startswith(("http://", "https://")):
        raise CheckFailed(f"invoiceUrl is not an absolute URL: {url!r}")


def run_checks(target: Target, echo: Callable[[str], None]) -> bool:
    """Run every check, echo one PASS/FAIL/SKIP line each, and say whether all passed."""
    draft_id = f"nb_{int(time.time())}_{secrets.token_hex(4)}"
    body = sample_order(draft_id)
    state: dict = {}

    def place_sample():
        order = target.expect("placeOrder", body, 200).get("order")
        _check_bik_order(order, draft_id, body)
        state["order"] = order
        invoice = order["invoiceUrl"] or "none (the guide allows null)"
        return f"stored as {order['id']} ({order['name']}), invoice {invoice}"

    def place_again():
        order = target.expect("placeOrder", body, 200).get("order")
        if not state.get("order"):
            raise CheckFailed("no order was placed")
        got = order.get("id") if isinstance(order, dict) else None
        if got != state["order"]["id"]:
            raise CheckFailed(f"the same draft came back as {got!r}, not {state['order']['id']!r}")
        return f"same id {got}"

    def conflicting_draft():
        changed = copy.deepcopy(body)
        changed["order"]["items"][0]["quantity"] = 3
        changed["order"]["subTotal"] = 1497
        changed["order"]["total"] = 1446
        target.expect("placeOrder", changed, 409)
        return "409 for the same draft with a different body"

    def get_order():
        if not state.get("order"):
            raise CheckFailed("no order was placed")
        wanted = state["order"]["id"]
        answer = target.expect("getOrder", {"orderId": wanted}, 200)
        order = answer.get("order")
        _check_bik_order(order, draft_id, body)
        if order["id"] != wanted:
            raise CheckFailed(f"asked for {wanted}, got {order['id']}")
        state["found"] = True
        return f"{wanted}: status {order['status']}, payment {order['paymentStatus']}"

    def unknown_order():
        if not state.get("found"):
            # Nothing proved getOrder's URL is an endpoint: where nothing is, every id gets a
            # 404. An endpoint answers a body without an orderId with something else.
            probe = target.post(target.get_url, target.get_auth, {})
            if probe.status_code == 404:
                raise CheckFailed(f"a body without an orderId got a 404 too: {_NO_PROOF}")
        unknown = {"orderId": f"NO-SUCH-{secrets.token_hex(6)}"}
        target.expect("getOrder", unknown, 404)
        return "404"

    def wrong_credentials():
        results, unguarded = [], []
        for name, url, spec in (
            ("placeOrder", target.place_url, target.place_auth),
            ("getOrder", target.get_url, target.get_auth),
        ):
            sent = body if name == "placeOrder" else {"orderId": "x"}
            if spec.scheme == "none":
                unguarded.append(name)
                answer = target.post(url, spec, sent)
                if answer.status_code == 401:
                    raise CheckFailed(
                        f"{name} demands credentials: "
                        f"{_other_scheme(answer, target, name)}{_pass_auth(target, name)}"
                    )
                results.append(f"{name} skipped (auth none)")
                continue
            # Wrong ones, then none at all: a server may check a header only when it is there.
            answers = {}
            for how, credentials in (("wrong", _wrong(spec)), ("no", AuthSpec("none"))):
                answers[how] = target.post(url, credentials, sent).status_code
            if answers["wrong"] == answers["no"] == _ANSWER_WITH_CREDENTIALS[name]:
                # What the right credentials get: nothing checked them (a 403, 429 or 502 may
                # be a proxy's, and says nothing of the kind).
                raise CheckFailed(
                    f"{name} answered {answers['wrong']} with wrong credentials and "
                    f"{answers['no']} with none{_SENT_FOR_CREDENTIALS.get(name, '')}: the "
                    "server checks no credentials there (its auth is none), not the "
                    f"{spec.scheme} --auth names; anyone who finds the URL can use it"
                )
            for how, status in answers.items():
                if status != 401:
                    raise CheckFailed(
                        f"{name} with {how} credentials answered {status}, expected 401"
                    )
            results.append(f"{name} 401")
        if unguarded:  # not a failure (a trial may want it), but never a quiet PASS
            which = "both endpoints" if len(unguarded) == 2 else unguarded[0]
            exposed = " and ".join(OPEN_TO[name] for name in unguarded)
            raise _Skip(
                f"{', '.join(results)}: auth is none on {which}, so anyone who finds the URL "
                f"can {exposed}"
            )
        return ", ".join(results)

    def malformed_body():
        response = target.post(target.place_url, target.place_auth, raw=b'{"draftOrderId": ')
        status = response.status_code
        if status in (401, 403):  # 403: a proxy's refusal, as likely as bikshop's 401
            raise CheckFailed(f"the request was refused ({status}), so the body was never read")
        if not 400 <= status < 500:
            raise CheckFailed(f"malformed JSON answered {status}, expected 4xx")
        if status == 404 and not state.get("order"):
            raise CheckFailed(f"404, and placeOrder placed no order (above): {_NO_PROOF}")
        # A 4xx alone proves little: a proxy in front may answer every request with one. The
        # endpoint's own error shape does, or an endpoint seen placing an order above.
        if not state.get("order") and not _is_error_shape(response):
            raise CheckFailed(
                f"{status} without an error in bikshop's shape (a JSON object's \"error\"), and "
                "placeOrder placed no order (above): it may be a proxy's answer, not the endpoint's"
            )
        return f"{status}"

    checks = [
        ("placeOrder accepts Bik's sample order", place_sample),
        ("placeOrder returns the same order for the same draft", place_again),
        ("placeOrder refuses the same draft with a different body", conflicting_draft),
        ("getOrder returns the placed order", get_order),
        ("getOrder answers 404 for an unknown id", unknown_order),
        ("wrong credentials are refused with 401", wrong_credentials),
        ("a malformed body gets a 4xx", malformed_body),
    ]
    ok = True
    answering = True
    for title, check in checks:
        if not answering:
            echo(f"FAIL  {title}: not run: the server gave no answer (above)")
            continue
        try:
            detail = check()
            echo(f"PASS  {title}: {detail}")
        except _Skip as skip:
            echo(f"SKIP  {title}: {skip}")
        except NoAnswer as failure:
            ok = False
            answering = False
            echo(f"FAIL  {title}: {failure}")
        except CheckFailed as failure:
            ok = False
            echo(f"FAIL  {title}: {failure}")
        except Exception as error:  # an answer no check foresaw: still one line, not a traceback
            ok = False
            echo(f"FAIL  {title}: unexpected answer ({type(error).__name__}: {error})")
    return ok


# What the wrong-credentials check asks getOrder for, and what each endpoint answers it with
# the right credentials (a replay of the sample; an unknown id).
_SENT_FOR_CREDENTIALS = {"getOrder": " (an unknown id)"}
_ANSWER_WITH_CREDENTIALS = {"placeOrder": 200, "getOrder": 404}


class _Skip(Exception):
    pass


def _wrong(spec: AuthSpec) -> AuthSpec:
    bad = "wrong-" + secrets.token_hex(4)
    return AuthSpec(spec.scheme, header=spec.header, token=bad, user=spec.user, password=bad)


def _endpoint(base: str, name: str) -> str:
    return f"{server_root(base)}/bik/{name}"


def server_root(url: str) -> str:
    """The server's own address in ``url``, which may be it or one of its Bik endpoint URLs:
    ``https://shop.example.com/bik/placeOrder`` gives ``https://shop.example.com``."""
    url = url.rstrip("/")
    for suffix in ("/bik/placeOrder", "/bik/getOrder", "/bik"):
        url = url.removesuffix(suffix)
    return url


def server_url_param(url: str, param_hint: str) -> str:
    """``url`` as the address of a bikshop server (see :func:`server_root`), or the usage error
    that says why it cannot be one."""
    if not url.lower().startswith(("http://", "https://")):
        raise click.BadParameter(
            "give the whole address with its scheme, e.g. https://shop.example.com",
            param_hint=param_hint,
        )
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:  # never echoed back
        raise click.BadParameter(
            "give credentials with --auth (as Bik sends them), not in the URL",
            param_hint=param_hint,
        )
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise click.BadParameter(
            "give the address without a query or fragment (Bik adds /placeOrder and /getOrder "
            "to it), e.g. https://shop.example.com/bik",
            param_hint=param_hint,
        )
    return server_root(url)


def _spec(value: str | None, option: str) -> AuthSpec | None:
    if value is None:
        return None
    try:
        return parse_auth_spec(value)
    except AuthSpecError as exc:
        raise click.BadParameter(str(exc), param_hint=option)


@click.command("check-bik")
@click.argument("url")
@click.option(
    "--auth",
    "auth",
    default="none",
    show_default=True,
    help="What Bik will send: none, bearer:<token>, apikey:<Header>:<token>, "
    "basic:<user>:<password>.",
)
@click.option("--place-order-auth", help="Override --auth for placeOrder.")
@click.option("--get-order-auth", help="Override --auth for getOrder.")
@click.option(
    "--timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds per request.",
)
def check_bik_command(url, auth, place_order_auth, get_order_auth, timeout):
    """Play Bik's side against a deployment at URL; exit 1 if any check fails.

    It places one real test order (tagged bikshop_contract_check).
    """
    url = server_url_param(url, "URL")
    default = _spec(auth, "--auth")
    target = Target(
        place_url=_endpoint(url, "placeOrder"),
        get_url=_endpoint(url, "getOrder"),
        place_auth=_spec(place_order_auth, "--place-order-auth") or default,
        get_auth=_spec(get_order_auth, "--get-order-auth") or default,
        timeout=timeout,
        options={
            endpoint: option if given is not None else "--auth"
            for (endpoint, (option, _)), given in zip(
                _OWN_AUTH.items(), (place_order_auth, get_order_auth), strict=True
            )
        },
    )
    click.echo(f"Checking {target.place_url} and {target.get_url} as Bik would")
    if not run_checks(target, click.echo):
        raise SystemExit(1)
    if not target.place_url.startswith("https://") or not target.get_url.startswith("https://"):
        click.echo(
            "All checks passed, over plain http: Bik calls https addresses, so register the "
            "server's public https URL (BIKSHOP_PUBLIC_URL behind nginx) and check that one."
        )
        return
    click.echo("All checks passed: register these URLs in Bik's Non-Shopify Onboarding screen.")
