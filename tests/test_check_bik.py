"""``flask --app bikshop check-bik`` against live gunicorn servers, one per auth scheme."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.bik import bik_app_fixture  # noqa: F401 (provides bik_app)
from tests.conftest import BASE_CONFIG, empty_database
from tests.servers import GunicornServer, free_port

SPECS = {
    "none": "none",
    "bearer": "bearer:chk_7Hq2Lm9Xw4Pz8Rt1",
    "apikey": "apikey:X-Glow-Key:chk_k3y_5Vb8Nc2Md6",
    "basic": "basic:bik:chk_pw_9Jx4Ks7Lq2",
}
# Two servers cover the four schemes, each endpoint configured on its own as Bik allows
# (a gunicorn start is the costly part of these tests).
SERVERS = {
    "bearer+apikey": ("bearer", "apikey"),
    "basic+none": ("basic", "none"),
}
CHECKS = [
    "placeOrder accepts Bik's sample order",
    "placeOrder returns the same order for the same draft",
    "placeOrder refuses the same draft with a different body",
    "getOrder returns the placed order",
    "getOrder answers 404 for an unknown id",
    "wrong credentials are refused with 401",
    "a malformed body gets a 4xx",
]


def server_env(database_url: str, **settings) -> dict:
    env = {f"BIKSHOP_{k}": str(v) for k, v in {**BASE_CONFIG, **settings}.items()}
    env.pop("BIKSHOP_TESTING")
    env["BIKSHOP_DATABASE_URL"] = database_url
    return env


@pytest.fixture(scope="module")
def servers(database_url, tmp_path_factory):
    """The two gunicorn servers, started side by side."""
    empty_database(database_url)
    log_dir = tmp_path_factory.mktemp("check-bik")
    started = {
        name: GunicornServer(
            workers=1,
            env=server_env(
                database_url,
                BIK_AUTH="none",  # never used: both endpoints are set explicitly
                BIK_PLACE_ORDER_AUTH=SPECS[place],
                BIK_GET_ORDER_AUTH=SPECS[get],
            ),
            log_dir=log_dir,
        )
        for name, (place, get) in SERVERS.items()
    }
    try:
        with ThreadPoolExecutor(max_workers=len(started)) as pool:
            list(pool.map(lambda server: server.start(), started.values()))
        yield started
    finally:
        for server in started.values():
            server.stop()


def auth_options(place: str, get: str) -> list[str]:
    return ["--place-order-auth", SPECS[place], "--get-order-auth", SPECS[get]]


def check_bik(bik_app, *args: str):
    result = bik_app.test_cli_runner().invoke(args=["check-bik", *args, "--timeout", "20"])
    return result.exit_code, result.output.splitlines()


def verdicts(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        verdict, _, rest = line.partition("  ")
        if verdict in ("PASS", "FAIL", "SKIP"):
            found[rest.split(":")[0]] = verdict
    return found


@pytest.mark.parametrize("name", list(SERVERS))
def test_check_bik_passes_against_a_live_server_with_the_same_auth(bik_app, servers, name):
    server = servers[name]
    code, lines = check_bik(bik_app, server.url, *auth_options(*SERVERS[name]))
    assert code == 0, "\n".join(lines)
    place, get = SERVERS[name]
    # An endpoint without auth is never a quiet PASS: anyone could read every order there.
    expected = dict.fromkeys(CHECKS, "PASS")
    expected["wrong credentials are refused with 401"] = (
        "SKIP" if "none" in (place, get) else "PASS"
    )
    assert verdicts(lines) == expected
    assert lines[0] == (
        f"Checking {server.url}/bik/placeOrder and {server.url}/bik/getOrder as Bik would"
    )
    # The test servers are plain http: passing, with a word that Bik calls https.
    assert lines[-1].startswith("All checks passed, over plain http: Bik calls https addresses")
    refused = next(line for line in lines if "wrong credentials" in line)
    assert "placeOrder 401" in refused
    assert ("getOrder skipped (auth none)" if get == "none" else "getOrder 401") in refused
    if get == "none":
        assert refused.endswith(
            "auth is none on getOrder, so anyone who finds the URL can read every order, with "
            "its customer's phone, email and address"
        ), refused


def test_check_bik_with_one_scheme_for_both_endpoints(bik_app, servers):
    # Against an open getOrder, the bearer token is simply not needed there.
    url = servers["bearer+apikey"].url + "/bik/placeOrder"  # any URL Bik shows will do
    code, lines = check_bik(bik_app, url, "--auth", SPECS["bearer"])
    assert code == 1 and verdicts(lines)["getOrder returns the placed order"] == "FAIL"
    code, lines = check_bik(bik_app, servers["basic+none"].url, "--auth", "none")
    found = verdicts(lines)
    assert code == 1 and found["placeOrder accepts Bik's sample order"] == "FAIL"
    assert found["getOrder answers 404 for an unknown id"] == "PASS"


def test_refused_credentials_name_the_endpoints_own_option_and_setting(bik_app, servers):
    """The server's getOrder has its own auth (BIKSHOP_BIK_GET_ORDER_AUTH): the advice named
    --auth and BIKSHOP_BIK_AUTH alone, which would not help."""
    url = servers["bearer+apikey"].url
    code, lines = check_bik(bik_app, url, "--auth", SPECS["bearer"])
    line = next(x for x in lines if x.startswith("FAIL  getOrder returns the placed order"))
    assert line.endswith(
        "pass the ones Bik will use for getOrder with --auth (as in the server's "
        "BIKSHOP_BIK_AUTH), or with --get-order-auth if the server's BIKSHOP_BIK_GET_ORDER_AUTH "
        "sets its own"
    ), line
    wrong_key = "apikey:X-Glow-Key:chk_not_the_key_00"
    options = ["--place-order-auth", SPECS["bearer"], "--get-order-auth", wrong_key]
    code, lines = check_bik(bik_app, url, *options)
    line = next(x for x in lines if x.startswith("FAIL  getOrder returns the placed order"))
    assert line.endswith(
        "pass the ones Bik will use for getOrder with --get-order-auth (as in the server's "
        "BIKSHOP_BIK_GET_ORDER_AUTH, or its BIKSHOP_BIK_AUTH where that is unset)"
    ), line
    assert code == 1 and "chk_not_the_key_00" not in "\n".join(lines)


def test_a_wrong_secret_of_the_right_scheme_is_not_called_a_wrong_scheme(bik_app, servers):
    """Only the scheme differing is named (from WWW-Authenticate); a wrong token of the scheme
    the server asks for keeps the plain line."""
    options = ["--place-order-auth", SPECS["bearer"]]
    options += ["--get-order-auth", "apikey:X-Glow-Key:chk_not_the_key_00"]
    code, lines = check_bik(bik_app, servers["bearer+apikey"].url, *options)
    line = next(x for x in lines if x.startswith("FAIL  getOrder returns the placed order"))
    assert "(401): pass the ones Bik will use for getOrder" in line and "asks for" not in line


def test_a_url_where_nothing_answers_passes_no_check(bik_app, servers):
    """A mistyped path prefix: every request is the server's 404 for the URL itself, which the
    unknown-id and malformed-body checks counted as PASS lines (wire probe)."""
    name = "bearer+apikey"
    code, lines = check_bik(bik_app, servers[name].url + "/prefix", *auth_options(*SERVERS[name]))
    assert code == 1
    assert set(verdicts(lines).values()) == {"FAIL"}, "\n".join(lines)
    assert "a 404 may be the URL's own (nothing there), so it proves nothing" in "\n".join(lines)


@pytest.mark.parametrize(
    ("name", "place", "get"),
    [
        ("bearer+apikey", "apikey", "bearer"),
        ("bearer+apikey", "basic", "none"),
        ("basic+none", "bearer", "none"),
        ("basic+none", "basic", "apikey"),
        ("basic+none", "basic", "bearer"),
    ],
)
def test_check_bik_fails_against_a_server_with_different_auth(bik_app, servers, name, place, get):
    code, lines = check_bik(bik_app, servers[name].url, *auth_options(place, get))
    assert code == 1, "\n".join(lines)
    found = verdicts(lines)
    assert set(found) == set(CHECKS)
    assert "FAIL" in found.values()
    if place != SERVERS[name][0]:
        # A scheme the server does not take: the line names both, from its WWW-Authenticate.
        asked = {"bearer": "Bearer", "basic": "Basic", "apikey": "ApiKey"}[SERVERS[name][0]]
        assert found["placeOrder accepts Bik's sample order"] == "FAIL"
        assert (
            f"the server refused the credentials (401): it asks for {asked}, and "
            f"--place-order-auth gives {place}: pass the ones Bik will use for placeOrder"
        ) in "\n".join(lines)
    if get == "none" and SERVERS[name][1] == "none":
        # An open getOrder takes anything, so only placeOrder can fail here.
        assert found["getOrder answers 404 for an unknown id"] == "PASS"
    if get == "none" and SERVERS[name][1] != "none":
        # Not "SKIP … auth is none": this server's getOrder wants credentials none were given for.
        assert found["wrong credentials are refused with 401"] == "FAIL"
        assert (
            "getOrder demands credentials: it asks for ApiKey, and --get-order-auth gives none: "
            "pass the ones Bik will use"
        ) in "\n".join(lines)
    if get != "none" and SERVERS[name][1] == "none":
        # Credentials given for an open getOrder: said so, not "answered 200, expected 401".
        assert found["wrong credentials are refused with 401"] == "FAIL"
        assert (
            "getOrder answered 404 with wrong credentials and 404 with none (an unknown id): the "
            f"server checks no credentials there (its auth is none), not the {get} --auth names"
        ) in "\n".join(lines)
    assert not lines[-1].startswith("All checks passed")


def test_check_bik_through_the_real_command_line(servers, tmp_path):
    """As a brand runs it from its own laptop: no bikshop settings at all (check-bik is a
    plugin command and never loads the app), and no instance folder."""
    url = servers["bearer+apikey"].url
    env = {k: v for k, v in os.environ.items() if not k.startswith("BIKSHOP_")}
    env["NO_PROXY"] = "127.0.0.1"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "bikshop",
            "check-bik",
            url,
            *auth_options("bearer", "apikey"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\nPASS  ") == len(CHECKS)
    assert "FAIL" not in result.stdout


def test_a_url_without_its_scheme_is_a_usage_error(bik_app):
    result = bik_app.test_cli_runner().invoke(
        args=["check-bik", "127.0.0.1:8000", "--auth", "none"]
    )
    assert result.exit_code == 2 and "https://shop.example.com" in result.output
    assert "FAIL" not in result.output


def test_a_malformed_auth_option_is_a_usage_error(bik_app):
    result = bik_app.test_cli_runner().invoke(
        args=["check-bik", "http://127.0.0.1:9", "--auth", "bearer"]
    )
    assert result.exit_code == 2 and "bearer:<token>" in result.output


def test_credentials_never_reach_the_server_logs(bik_app, servers):
    for name, (place, get) in SERVERS.items():
        check_bik(bik_app, servers[name].url, *auth_options(place, get))
    for name, server in servers.items():
        log = server.log_once_it_has("/bik/placeOrder", "/bik/getOrder")
        assert "/bik/placeOrder" in log, name  # the log is there, and it is clean
        for spec in SPECS.values():
            secret = spec.rsplit(":", 1)[-1]
            if secret != "none":
                assert secret not in log, (name, secret)
        assert "wrong-" not in log  # check-bik's deliberately wrong credentials


class _Misbehaving(BaseHTTPRequestHandler):
    """A server that claims the contract but answers ``self.server.answer`` to every POST."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        sent = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append(self.path)
        self.server.authorization.append(self.headers.get("Authorization"))
        answer = self.server.answer
        status, headers, body = answer(sent, self.headers) if callable(answer) else answer
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def misbehaving():
    """A real HTTP server on loopback answering whatever the test sets."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    server.seen = []
    server.authorization = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _json_answer(document) -> tuple[int, dict, bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(document).encode()


def _echoing_draft(order: dict):
    def answer(sent: bytes, headers):
        try:
            draft = json.loads(sent).get("draftOrderId", "x")
        except ValueError:  # check-bik's malformed body
            draft = "x"
        return _json_answer({"order": {**order, "partnersData": {"id": draft}}})

    return answer


_ORDER_LIKE = {
    "id": "A-1", "name": "#1", "status": "ORDERED", "paymentStatus": "pending",
    "total": 947, "subTotal": 998, "shippingCharge": 49, "discount": 100, "currency": "INR",
    "phoneNumber": "+919876543210", "email": "", "invoiceUrl": "https://x.example/i",
    "address": None, "items": [{}],
}  # fmt: skip


@pytest.mark.parametrize(
    "answer",
    [
        _json_answer([1, 2]),
        _json_answer("ok"),
        _json_answer({"order": "placed"}),
        _echoing_draft({**_ORDER_LIKE, "items": [5]}),  # all is well up to items[0]
        _json_answer({"order": {**_ORDER_LIKE, "partnersData": "nb"}}),
    ],
    ids=["array", "string", "order-string", "item-number", "partners-string"],
)
def test_an_answer_outside_the_contract_is_a_fail_line_not_a_traceback(
    bik_app, misbehaving, answer
):
    misbehaving.answer = answer
    result = bik_app.test_cli_runner().invoke(
        args=["check-bik", f"http://127.0.0.1:{misbehaving.server_port}", "--auth", "bearer:t"]
    )
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    found = verdicts(result.output.splitlines())
    assert set(found) == set(CHECKS) and set(found.values()) == {"FAIL"}, result.output


def test_an_unreachable_server_is_a_fail_line_for_every_check(bik_app):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = bik_app.test_cli_runner().invoke(args=["check-bik", url, "--auth", "bearer:t"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output
    found = verdicts(result.output.splitlines())
    assert set(found) == set(CHECKS) and set(found.values()) == {"FAIL"}, result.output
    assert "no answer from" in result.output
    assert "connection refused: is bikshop running there, and is the port right?" in result.output
    assert "Max retries" not in result.output  # urllib3's paragraph, once per check


@pytest.fixture
def tls_server(tmp_path):
    """A server on loopback speaking TLS with a self-signed certificate; yields its port."""
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def test_a_server_that_connects_but_never_answers_is_asked_once(bik_app):
    """A stuck server: the connection is made, so no firewall is to blame; and every later
    check would wait the whole --timeout again, so none is run."""
    listener = socket.create_server(("127.0.0.1", 0))
    held = []

    def accept():
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept()[0])  # read nothing, answer nothing

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        result = bik_app.test_cli_runner().invoke(
            args=["check-bik", url, "--auth", "bearer:t", "--timeout", "0.5"]
        )
    finally:
        listener.close()
        for connection in held:
            connection.close()
    lines = result.output.splitlines()[1:]
    assert result.exit_code == 1 and len(lines) == len(CHECKS), result.output
    assert lines[0] == (
        f"FAIL  {CHECKS[0]}: no answer from {url}/bik/placeOrder: connected, but no answer "
        "within 0.5 s (--timeout): is the server (or a worker) stuck?"
    )
    assert lines[1:] == [
        f"FAIL  {title}: not run: the server gave no answer (above)" for title in CHECKS[1:]
    ]
    assert len(held) == 1  # one request, one wait


def test_a_connection_that_times_out_suggests_a_firewall():
    from bikshop.checkbik import _why_no_answer

    reason = _why_no_answer(requests.exceptions.ConnectTimeout("x"), 10, "https://shop.test")
    assert reason == "no connection within 10 s (--timeout): is a firewall dropping it?"


def test_an_untrusted_certificate_is_named_as_such(bik_app, tls_server):
    """A staging server with a self-signed certificate: say that, not an SSLError paragraph."""
    url = f"https://127.0.0.1:{tls_server}"
    result = bik_app.test_cli_runner().invoke(args=["check-bik", url, "--auth", "bearer:t"])
    assert result.exit_code == 1, result.output
    assert "its TLS certificate is not trusted (self-signed" in result.output, result.output
    assert "Max retries" not in result.output


def test_https_to_a_plain_http_port_says_so_not_that_the_certificate_is_untrusted(
    bik_app, misbehaving
):
    """https://host:8000 (gunicorn's plain port): OpenSSL's WRONG_VERSION_NUMBER, which was
    reported as an untrusted certificate."""
    url = f"https://127.0.0.1:{misbehaving.server_port}"
    result = bik_app.test_cli_runner().invoke(args=["check-bik", url, "--auth", "bearer:t"])
    assert result.exit_code == 1, result.output
    assert "the server there does not speak https (plain http on that port?)" in result.output
    assert "certificate" not in result.output and "WRONG_VERSION" not in result.output


def test_http_to_a_tls_port_hints_at_https(bik_app, tls_server):
    url = f"http://127.0.0.1:{tls_server}"
    result = bik_app.test_cli_runner().invoke(args=["check-bik", url, "--auth", "bearer:t"])
    assert result.exit_code == 1, result.output
    assert (
        "the connection failed or was closed before an answer: if that port speaks https "
        "(nginx's 443), use an https:// address"
    ) in result.output, result.output


def test_a_redirect_is_reported_with_its_target_and_never_followed(bik_app, misbehaving):
    """An http URL that redirects to https: a client following it turns Bik's POST into a GET
    (301, 302); the brand must register the final URL."""
    elsewhere = f"http://127.0.0.1:{misbehaving.server_port}/elsewhere"
    misbehaving.answer = (301, {"Location": elsewhere}, b"")
    result = bik_app.test_cli_runner().invoke(
        args=["check-bik", f"http://127.0.0.1:{misbehaving.server_port}", "--auth", "bearer:t"]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    found = verdicts(result.output.splitlines())
    assert found["placeOrder accepts Bik's sample order"] == "FAIL"
    assert f"answered 301 redirecting to {elsewhere}" in result.output
    assert "/elsewhere" not in misbehaving.seen and misbehaving.seen


_CONTRACT_ORDER = {
    **_ORDER_LIKE,
    "email": "buyer@example.com",
    "fulfillmentStatus": "unfulfilled",
    "address": {"firstName": "Bik", "lastName": "Tester", "address1": "HSR Layout",
                "address2": None, "city": "Bengaluru", "state": None, "country": "India",
                "zip": "560102", "phoneNumber": None},
    "items": [
        {"productId": 6862852391049, "variantId": 40946134352009, "name": "Skin Renew Cream",
         "variantName": "Default", "quantity": 2, "price": 499, "image": None},
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({}, None),  # the stub's own answer keeps the contract: each case below breaks one rule
        ({"status": "ordered"}, "order.status is 'ordered'"),
        ({"paymentStatus": "PENDING"}, "order.paymentStatus is 'PENDING'"),
        ({"fulfillmentStatus": "shipped"}, "order.fulfillmentStatus is 'shipped'"),
        ({"email": "Buyer@Example.com"}, "order.email is 'Buyer@Example.com'"),
        ({"address": "HSR Layout"}, "order.address is 'HSR Layout'"),
        ({"items.quantity": "2"}, "order.items[0].quantity is '2'"),
        ({"items.price": 500}, "order.items[0].price is 500, but 499 was sent"),
        ({"items.name": None}, "order.items[0].name is None, expected a string"),
        ({"items.variantName": None}, "order.items[0].variantName is None, expected a string"),
        ({"items.image": 5}, "order.items[0].image is 5, expected a string or null"),
        ({"items.variantId": 40946134352009.0}, "variantId is 40946134352009.0, expected a whole"),
        ({"shippingCharge": 0}, "order.shippingCharge is 0, but 49 was sent"),
        ({"address.city": None}, "order.address.city is None, expected a string"),
        ({"address.zip": 560102}, "order.address.zip is 560102, expected a string"),
        ({"address": None}, "order.address is null, but an address was sent"),
        ({"invoiceUrl": None}, None),  # the guide allows null
    ],
    ids=["as-sent", "status", "payment", "fulfillment", "email", "address", "qty", "price",
         "name", "variant-name", "image", "float-id", "shipping", "city", "zip", "no-address",
         "no-invoice"],
)  # fmt: skip
def test_the_answer_is_checked_field_by_field_against_the_contract(
    bik_app, misbehaving, change, named
):
    order = copy.deepcopy(_CONTRACT_ORDER)
    for key, value in change.items():
        if key.startswith("items."):
            order["items"][0][key.removeprefix("items.")] = value
        elif key.startswith("address."):
            order["address"][key.removeprefix("address.")] = value
        else:
            order[key] = value
    misbehaving.answer = _echoing_draft(order)
    result = bik_app.test_cli_runner().invoke(
        args=["check-bik", f"http://127.0.0.1:{misbehaving.server_port}", "--auth", "bearer:t"]
    )
    line = next(x for x in result.output.splitlines() if "accepts Bik's sample order" in x)
    if named is None:
        assert line.startswith("PASS"), line
    else:
        assert line.startswith("FAIL") and named in line, line


def test_a_timeout_that_is_not_positive_is_a_usage_error(bik_app):
    result = bik_app.test_cli_runner().invoke(
        args=["check-bik", "http://127.0.0.1:9", "--timeout", "0"]
    )
    assert result.exit_code == 2 and "--timeout" in result.output
    assert "FAIL" not in result.output


def _check_bik_with_token_t(bik_app, misbehaving, refusal):
    """check-bik with ``--auth bearer:t`` against a server that answers as the contract says,
    except where ``refusal(headers)`` gives its own (status, headers, body)."""
    placed = _echoing_draft(_CONTRACT_ORDER)
    misbehaving.answer = lambda sent, headers: refusal(headers) or placed(sent, headers)
    return bik_app.test_cli_runner().invoke(
        args=["check-bik", f"http://127.0.0.1:{misbehaving.server_port}", "--auth", "bearer:t"]
    )


def test_a_server_that_takes_a_request_without_credentials_fails(bik_app, misbehaving):
    """It refuses a wrong token, but lets a request with no Authorization header through, as a
    server checking the header only when it is there would."""

    def refusal(headers):
        given = headers.get("Authorization")
        if given is not None and given != "Bearer t":
            return 401, {"Content-Type": "application/json"}, b'{"error": "unauthorized"}'
        return None

    result = _check_bik_with_token_t(bik_app, misbehaving, refusal)
    line = next(x for x in result.output.splitlines() if "wrong credentials" in x)
    assert line.startswith("FAIL") and "placeOrder with no credentials answered 200" in line
    assert result.exit_code == 1


def test_a_server_that_refuses_with_403_is_not_said_to_check_no_credentials(bik_app, misbehaving):
    """A proxy's 403 for wrong and missing credentials alike is a wrong status, not an open
    endpoint: only answers equal to the right credentials' mean nothing checked them."""

    def refusal(headers):
        if headers.get("Authorization") != "Bearer t":
            return 403, {"Content-Type": "application/json"}, b'{"error": "forbidden"}'
        return None

    result = _check_bik_with_token_t(bik_app, misbehaving, refusal)
    line = next(x for x in result.output.splitlines() if "wrong credentials are" in x)
    assert line.startswith("FAIL") and "placeOrder with wrong credentials answered 403" in line
    assert "checks no credentials" not in result.output
    assert result.exit_code == 1


def test_only_the_credentials_bik_sends_are_sent_whatever_the_users_netrc_says(
    bik_app, misbehaving, tmp_path, monkeypatch
):
    """requests would otherwise add a ~/.netrc entry for the host as Basic auth, over the
    bearer token (and to the request meant to carry no credentials)."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pass\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    placed = _echoing_draft(_CONTRACT_ORDER)

    def answer(sent: bytes, headers):
        if headers.get("Authorization") != "Bearer t":
            return 401, {"Content-Type": "application/json"}, b'{"error": "unauthorized"}'
        return placed(sent, headers)

    misbehaving.answer = answer
    bik_app.test_cli_runner().invoke(
        args=["check-bik", f"http://127.0.0.1:{misbehaving.server_port}", "--auth", "bearer:t"]
    )
    sent = misbehaving.authorization
    assert sent and not any(a and a.startswith("Basic") for a in sent), sent
    assert "Bearer t" in sent and None in sent  # the right token, and the request with none


def test_credentials_in_the_url_are_a_usage_error_and_never_echoed(bik_app):
    result = bik_app.test_cli_runner().invoke(
        args=["check-bik", "https://bik:s3cret-in-url@shop.example.com", "--auth", "none"]
    )
    assert result.exit_code == 2 and "--auth" in result.output
    assert "s3cret-in-url" not in result.output and "Checking" not in result.output


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/bik?x=1", "http://127.0.0.1:1/bik#top"])
def test_a_url_with_a_query_or_fragment_is_a_usage_error(bik_app, url):
    result = bik_app.test_cli_runner().invoke(args=["check-bik", url, "--auth", "none"])
    assert result.exit_code == 2 and "without a query or fragment" in result.output
    assert "Checking" not in result.output


@pytest.mark.parametrize(
    "answer",
    [
        (403, {"Content-Type": "text/html"}, b"<html><h1>403 Forbidden</h1></html>"),
        (400, {"Content-Type": "text/html"}, b"<html><h1>400 Bad Request</h1></html>"),
        (429, {"Content-Type": "application/json"}, b'{"message": "slow down"}'),
    ],
    ids=["403", "400-html", "429-json"],
)
def test_a_proxy_answering_every_request_the_same_passes_no_check(bik_app, misbehaving, answer):
    """A proxy's 403 to everything: every check failed but the last, "PASS a malformed body
    gets a 4xx: 403"; a 4xx counts there only in bikshop's error shape, or from an endpoint
    that placed the order above."""
    misbehaving.answer = answer
    result = bik_app.test_cli_runner().invoke(
        args=["check-bik", f"http://127.0.0.1:{misbehaving.server_port}", "--auth", "bearer:t"]
    )
    found = verdicts(result.output.splitlines())
    assert set(found) == set(CHECKS) and set(found.values()) == {"FAIL"}, result.output
    assert result.exit_code == 1


def test_a_malformed_body_refused_in_bikshops_shape_passes_before_any_order(bik_app, misbehaving):
    """An endpoint that refuses the sample (a 422 of its own) still proves its 400 is its own."""
    misbehaving.answer = (
        400,
        {"Content-Type": "application/json"},
        b'{"error": {"status": 400, "code": "bad_request", "message": "not JSON", "fields": []}}',
    )
    result = bik_app.test_cli_runner().invoke(
        args=["check-bik", f"http://127.0.0.1:{misbehaving.server_port}", "--auth", "bearer:t"]
    )
    assert verdicts(result.output.splitlines())["a malformed body gets a 4xx"] == "PASS"


def test_auth_none_on_both_endpoints_says_what_anyone_can_do(bik_app, misbehaving):
    misbehaving.answer = _echoing_draft(_CONTRACT_ORDER)
    result = bik_app.test_cli_runner().invoke(
        args=["check-bik", f"http://127.0.0.1:{misbehaving.server_port}", "--auth", "none"]
    )
    line = next(x for x in result.output.splitlines() if "wrong credentials are" in x)
    assert line == (
        "SKIP  wrong credentials are refused with 401: placeOrder skipped (auth none), getOrder "
        "skipped (auth none): auth is none on both endpoints, so anyone who finds the URL can "
        "place orders and read every order, with its customer's phone, email and address"
    )
