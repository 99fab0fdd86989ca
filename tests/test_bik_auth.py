"""Bik's four auth schemes × missing, wrong and right credentials × both endpoints."""

from __future__ import annotations

import base64
import logging

import pytest
import requests

from bikshop import ConfigError, create_app
from bikshop.bik.auth import MAX_HEADER_LINE, parse_auth_spec
from bikshop.database import dispose_engines
from bikshop.extensions import db
from tests.bik import assert_error_shape, sample_body, stored_state
from tests.conftest import BASE_CONFIG

TOKEN = "tok_9f8e7d6c5b4a39281706"
API_KEY = "key_0a1b2c3d4e5f60718293"
PASSWORD = "pa:ss-w0rd_4f5e6d"  # a colon inside the password is legal in basic auth
SPECS = {
    "none": "none",
    "bearer": f"bearer:{TOKEN}",
    "apikey": f"apikey:X-Brand-Key:{API_KEY}",
    "basic": f"basic:bik-orders:{PASSWORD}",
}
SECRETS = (TOKEN, API_KEY, PASSWORD)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# What a caller with the wrong secret sends, per scheme.
WRONG = {
    "none": {"Authorization": "Bearer whatever"},
    "bearer": {"Authorization": "Bearer tok_wrong"},
    "apikey": {"X-Brand-Key": "key_wrong"},
    "basic": {"Authorization": basic("bik-orders", "wrong")},
}
ENDPOINTS = ("placeOrder", "getOrder")
CHALLENGES = {
    "bearer": 'Bearer realm="bikshop"',
    "apikey": 'ApiKey realm="bikshop"',
    "basic": 'Basic realm="bikshop", charset="UTF-8"',  # RFC 7617: what bikshop reads
}


@pytest.fixture(scope="module")
def apps(database_url):
    """One app per scheme (and per backend), built once for the module."""
    built: dict = {}

    def app_for(**auth):
        key = tuple(sorted(auth.items()))
        if key not in built:
            built[key] = create_app({**BASE_CONFIG, "DATABASE_URL": database_url, **auth})
        return built[key]

    yield app_for
    for app in built.values():
        with app.app_context():
            db.session.remove()
            dispose_engines()


def right_headers(scheme: str) -> dict:
    return parse_auth_spec(SPECS[scheme]).headers()


def call(client, endpoint: str, headers: dict, order_id: str = "ORD-1"):
    body = sample_body() if endpoint == "placeOrder" else {"orderId": order_id}
    return client.post(f"/bik/{endpoint}", json=body, headers=headers)


def assert_unauthorized(response, scheme: str) -> None:
    error = assert_error_shape(response, 401)
    assert error == {
        "status": 401,
        "code": "unauthorized",
        "message": "Missing or invalid credentials",
        "fields": [],
    }
    text = response.get_data(as_text=True)
    for secret in SECRETS + ("X-Brand-Key", "bearer", "basic", "apikey"):
        assert secret.lower() not in text.lower()
    # Every 401 names the scheme to use (RFC 9110 15.5.2), and only that.
    assert response.headers["WWW-Authenticate"] == CHALLENGES[scheme]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("attempt", ["missing", "wrong", "right"])
@pytest.mark.parametrize("scheme", list(SPECS))
def test_auth_matrix(apps, scheme, attempt, endpoint):
    app = apps(BIK_AUTH=SPECS[scheme])
    client = app.test_client()
    # An order that exists, so a refused getOrder cannot be mistaken for a 404.
    existing = call(client, "placeOrder", right_headers(scheme)).get_json()["order"]["id"]
    headers = {"missing": {}, "wrong": WRONG[scheme], "right": right_headers(scheme)}[attempt]
    before = stored_state(app)
    response = call(client, endpoint, headers, existing)
    if attempt == "right" or scheme == "none":
        assert response.status_code == 200, response.get_data(as_text=True)
        order = response.get_json()["order"]
        if endpoint == "getOrder":
            assert order["id"] == existing
        else:
            assert stored_state(app)["orders"] == before["orders"] + 1
    else:
        assert_unauthorized(response, scheme)
        assert stored_state(app) == before


@pytest.mark.parametrize(
    ("scheme", "headers"),
    [
        ("bearer", {"Authorization": f"Basic {TOKEN}"}),
        ("bearer", {"Authorization": f"Bearer {TOKEN}x"}),
        ("bearer", {"Authorization": f"Bearer {TOKEN[:-1]}"}),
        ("bearer", {"Authorization": TOKEN}),
        ("bearer", {"Authorization": "Bearer"}),
        ("bearer", {"X-Brand-Key": TOKEN}),
        ("bearer", {"Authorization": f"Bearer {TOKEN.upper()}"}),
        ("apikey", {"X-Other-Key": API_KEY}),
        ("apikey", {"Authorization": f"Bearer {API_KEY}"}),
        ("apikey", {"X-Brand-Key": f"Bearer {API_KEY}"}),
        ("apikey", {"X-Brand-Key": ""}),
        ("basic", {"Authorization": basic("someone-else", PASSWORD)}),
        ("basic", {"Authorization": basic("bik-orders", PASSWORD + "x")}),
        ("basic", {"Authorization": basic("bik-orders", "pa")}),
        ("basic", {"Authorization": "Basic " + base64.b64encode(b"bik-orders").decode()}),
        ("basic", {"Authorization": "Basic not-base64!!"}),
        ("basic", {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()}),
        ("basic", {"Authorization": f"Bearer {PASSWORD}"}),
        ("basic", {"Authorization": "Basic ñ"}),
    ],
)
def test_near_miss_credentials_are_refused(apps, scheme, headers):
    app = apps(BIK_AUTH=SPECS[scheme])
    before = stored_state(app)
    for endpoint in ENDPOINTS:
        assert_unauthorized(call(app.test_client(), endpoint, headers), scheme)
    assert stored_state(app) == before


@pytest.mark.parametrize(
    ("scheme", "headers"),
    [
        ("bearer", {"Authorization": f"bearer {TOKEN}"}),  # the scheme name is case-insensitive
        ("bearer", {"Authorization": f"  Bearer   {TOKEN}  "}),
        ("apikey", {"x-brand-key": API_KEY}),  # so are header names
        ("basic", {"Authorization": basic("bik-orders", PASSWORD).replace("Basic", "BASIC")}),
    ],
)
def test_equivalent_spellings_of_the_right_credentials_are_accepted(apps, scheme, headers):
    client = apps(BIK_AUTH=SPECS[scheme]).test_client()
    assert call(client, "placeOrder", headers).status_code == 200


def test_a_basic_password_of_any_printable_text_matches_as_utf8_or_latin1(apps):
    """Basic credentials travel base64-encoded, so Bik's onboarding screen may hold a password
    with accents: RFC 7617's UTF-8 matches, and so does a sender's latin-1; a near miss does
    not. check-bik sends what bikshop expects (AuthSpec.headers)."""
    spec = "basic:bik-orders:pässwörd €5"
    client = apps(BIK_AUTH=spec).test_client()

    def encoded(password: str, charset: str) -> dict:
        pair = f"bik-orders:{password}".encode(charset)
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    assert call(client, "placeOrder", encoded("pässwörd €5", "utf-8")).status_code == 200
    assert call(client, "placeOrder", encoded("pässwörd 5", "latin-1")).status_code == 401
    latin = apps(BIK_AUTH="basic:bik-orders:pässwörd").test_client()
    assert call(latin, "placeOrder", encoded("pässwörd", "latin-1")).status_code == 200
    assert call(latin, "placeOrder", encoded("passwörd", "utf-8")).status_code == 401
    assert call(client, "placeOrder", parse_auth_spec(spec).headers()).status_code == 200


def test_per_endpoint_overrides(apps):
    app = apps(
        BIK_AUTH=SPECS["bearer"],
        BIK_PLACE_ORDER_AUTH=SPECS["basic"],
        BIK_GET_ORDER_AUTH=SPECS["apikey"],
    )
    client = app.test_client()
    assert_unauthorized(call(client, "placeOrder", right_headers("bearer")), "basic")
    assert_unauthorized(call(client, "placeOrder", right_headers("apikey")), "basic")
    placed = call(client, "placeOrder", right_headers("basic"))
    assert placed.status_code == 200
    order_id = placed.get_json()["order"]["id"]
    assert_unauthorized(call(client, "getOrder", right_headers("bearer"), order_id), "apikey")
    assert_unauthorized(call(client, "getOrder", right_headers("basic"), order_id), "apikey")
    got = call(client, "getOrder", right_headers("apikey"), order_id)
    assert got.status_code == 200 and got.get_json()["order"]["id"] == order_id


def test_one_override_leaves_the_other_endpoint_on_the_shared_setting(apps):
    app = apps(BIK_AUTH=SPECS["bearer"], BIK_GET_ORDER_AUTH="none")
    client = app.test_client()
    assert_unauthorized(call(client, "placeOrder", {}), "bearer")
    order_id = call(client, "placeOrder", right_headers("bearer")).get_json()["order"]["id"]
    assert call(client, "getOrder", {}, order_id).status_code == 200


def test_auth_is_checked_before_anything_else_so_a_401_hints_nothing(apps):
    app = apps(BIK_AUTH=SPECS["bearer"])
    client = app.test_client()
    before = stored_state(app)
    for data, content_type in (
        (b"{not json", "application/json"),
        (b"{}", "text/plain"),
        (b"[]", "application/json"),
    ):
        response = client.post("/bik/placeOrder", data=data, headers={"Content-Type": content_type})
        assert_unauthorized(response, "bearer")
    assert stored_state(app) == before


def test_credentials_never_reach_the_logs(caplog):
    # A database outage makes bikshop log the request it failed; the credentials must not be there.
    app = create_app(
        {
            **BASE_CONFIG,
            "BIK_AUTH": SPECS["basic"],
            "DATABASE_URL": "sqlite:////nonexistent-bikshop-dir/db.sqlite3",
        }
    )
    client = app.test_client()
    caplog.set_level(logging.DEBUG)
    wrong = {"Authorization": basic("bik-orders", "wrong-secret-123")}
    for headers in (wrong, right_headers("basic"), {"Authorization": "Basic !!"}):
        for endpoint in ENDPOINTS:
            call(client, endpoint, headers)
    assert [r for r in caplog.records if r.name.startswith("bikshop")], "nothing was logged"
    logged = caplog.text + repr([r.__dict__ for r in caplog.records])
    for secret in (PASSWORD, "wrong-secret-123", right_headers("basic")["Authorization"][6:]):
        assert secret not in logged
    assert PASSWORD not in repr(app.config["BIK_AUTH_SPECS"])
    with app.app_context():
        dispose_engines()


def _longest(scheme: str) -> str:
    """The longest credential of ``scheme`` bikshop starts with (``MAX_HEADER_LINE``)."""
    if scheme == "bearer":
        return "bearer:" + "t" * (MAX_HEADER_LINE - len("Authorization: Bearer \r\n"))
    if scheme == "apikey":
        return "apikey:X-Brand-Key:" + "k" * (MAX_HEADER_LINE - len("X-Brand-Key: \r\n"))
    room = MAX_HEADER_LINE - len("Authorization: Basic \r\n")  # base64: 3 bytes in 4 characters
    return "basic:bik:" + "p" * (room // 4 * 3 - len("bik:"))


@pytest.mark.parametrize("scheme", ["bearer", "apikey", "basic"])
def test_a_credential_too_long_for_one_header_line_is_refused_at_start_up(scheme):
    """A 9,000-character token started, then gunicorn answered every call 431."""
    longest = _longest(scheme)
    assert parse_auth_spec(longest).scheme == scheme
    with pytest.raises(ConfigError) as caught:
        create_app({**BASE_CONFIG, "DATABASE_URL": "sqlite://", "BIK_AUTH": longest + "x"})
    message = str(caught.value)
    assert message.startswith("BIKSHOP_BIK_AUTH is invalid: the ") and "\n" not in message
    assert "8 KiB" in message and "431" in message and "ppppp" not in message
    assert "ttttt" not in message and "kkkkk" not in message


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the HTTP layer only
@pytest.mark.parametrize("scheme", ["bearer", "basic"])
def test_the_longest_credential_bikshop_starts_with_reaches_it_through_gunicorn(gunicorn, scheme):
    server = gunicorn(workers=1, env={"BIKSHOP_BIK_AUTH": _longest(scheme)})
    headers = parse_auth_spec(_longest(scheme)).headers()
    url = f"{server.url}/bik/getOrder"
    answer = requests.post(url, json={"orderId": "ORD-9"}, headers=headers, timeout=10)
    assert answer.status_code == 404, answer.text  # past the credentials: no such order
    # A header line one byte longer (base64 may leave a few spare), and gunicorn refuses it.
    ((name, value),) = headers.items()
    longer = {name: value + "x" * (MAX_HEADER_LINE + 1 - len(f"{name}: {value}\r\n"))}
    assert requests.post(url, json={}, headers=longer, timeout=10).status_code == 431
