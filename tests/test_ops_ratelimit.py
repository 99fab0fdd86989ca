"""Rate limits: admin sign-in, invoice lookups and the Pay button refuse floods with a 429."""

from __future__ import annotations

import secrets

import pytest
import requests

from bikshop.extensions import limiter
from bikshop.ratelimit import wait_words
from tests.bik import get, place
from tests.fake_razorpay import path_of, shop_with_open_link


def _invoice_path(client) -> str:
    answer = place(client)
    assert answer.status_code == 200
    return "/invoice/" + answer.get_json()["order"]["invoiceUrl"].rsplit("/invoice/", 1)[1]


def _assert_html_429(answer):
    assert answer.status_code == 429
    assert answer.mimetype == "text/html"
    assert "Too many requests" in answer.get_data(as_text=True)
    assert int(answer.headers["Retry-After"]) > 0


def test_invoice_page_and_pdf_are_limited_per_address(make_app):
    client = make_app(RATELIMIT_INVOICE="3 per minute").test_client()
    path = _invoice_path(client)
    for _ in range(3):
        assert client.get(path).status_code == 200
    _assert_html_429(client.get(path))
    # Another address has its own allowance (behind one trusted proxy).
    other = make_app(RATELIMIT_INVOICE="3 per minute", PROXY_FIX_X_FOR=1).test_client()
    assert other.get(path, headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200
    unlimited = make_app(RATELIMIT_INVOICE="off").test_client()
    assert all(unlimited.get(path).status_code == 200 for _ in range(6))


def test_ipv6_addresses_are_counted_by_their_64(make_app):
    """One connection is given a whole /64: each of its addresses had its own allowance
    (security probe). Addresses of one /64 now share one; another /64 has its own."""
    client = make_app(RATELIMIT_INVOICE="3 per minute", PROXY_FIX_X_FOR=1).test_client()
    path = _invoice_path(client)
    for host in (1, 2, 3):
        forwarded = {"X-Forwarded-For": f"2001:db8:1:2::{host}"}
        assert client.get(path, headers=forwarded).status_code == 200
    _assert_html_429(client.get(path, headers={"X-Forwarded-For": "2001:db8:1:2:ffff::99"}))
    assert client.get(path, headers={"X-Forwarded-For": "2001:db8:1:3::1"}).status_code == 200


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::7", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),  # an IPv4 client of a dual-stack socket
        ("", "unknown"),
        ("not an address", "not an address"),
    ],
)
def test_client_address(address, counted_as):
    from bikshop.security import client_address

    assert client_address(address) == counted_as


def test_only_a_429_carries_the_limiters_retry_after(make_app):
    """A limited route's other answers tell no client to wait: a 200, a redirect, a 404 carry
    no Retry-After, while the X-RateLimit-* headers stay; the 429 carries one."""
    client = make_app(RATELIMIT_INVOICE="3 per minute", RATELIMIT_PAY="5 per minute").test_client()
    path = _invoice_path(client)
    page = client.get(path)
    assert page.status_code == 200 and page.headers["X-RateLimit-Limit"] == "3"
    assert "Retry-After" not in page.headers
    paying = client.post(path + "/pay")  # no Razorpay configured: back to the page
    assert paying.status_code == 303 and "Retry-After" not in paying.headers
    missing = client.get(f"/invoice/{secrets.token_urlsafe(24)}")  # not counted against path
    assert missing.status_code == 404 and "Retry-After" not in missing.headers
    assert [client.get(path).status_code for _ in range(2)] == [200, 200]  # the third of three
    _assert_html_429(client.get(path))


def test_guessing_invoice_tokens_locks_out_guesses_but_never_a_real_invoice(make_app):
    """A guesser behind the customer's address (CGNAT, or a proxy bikshop was not told about)
    is refused after a few unknown tokens; the customer's invoice, its PDF and the page
    Razorpay sends the customer back to after paying still open."""
    with shop_with_open_link(make_app, settings={"RATELIMIT_INVOICE_MISSES": "2 per minute"}) as (
        _,
        client,
        fake,
        _,
        path,
    ):
        assert client.get(path).status_code == 200  # a real token costs nothing
        for _ in range(2):
            assert client.get(f"/invoice/{secrets.token_urlsafe(24)}").status_code == 404
        _assert_html_429(client.get(f"/invoice/{secrets.token_urlsafe(24)}.pdf"))
        _assert_html_429(client.get(f"/invoice/{secrets.token_urlsafe(24)}/paid"))
        _assert_html_429(client.get("/invoice/not-even-a-token"))
        assert client.get(path).status_code == 200
        assert client.get(path + ".pdf").status_code == 200
        callback = client.get(path_of(fake.pay(fake.only_link()["id"], deliver=False)))
        assert callback.status_code == 200 and "Paid. Thank you" in callback.get_data(as_text=True)
        _assert_html_429(client.get(f"/invoice/{secrets.token_urlsafe(24)}"))  # still refused


def test_each_invoice_has_its_own_allowance_and_guesses_do_not_use_it(make_app):
    client = make_app(RATELIMIT_INVOICE="2 per minute").test_client()
    first, second = _invoice_path(client), _invoice_path(client)
    for _ in range(5):
        assert client.get(f"/invoice/{secrets.token_urlsafe(24)}").status_code == 404
    assert [client.get(first).status_code for _ in range(3)] == [200, 200, 429]
    assert client.get(second).status_code == 200  # another customer behind the same address


def test_head_requests_count_as_the_reads_they_are(make_app):
    """Flask answers HEAD with the GET view: HEAD tells whether a token exists as well as GET
    does, so guesses by HEAD count as guesses, and an invoice's allowance covers both."""
    client = make_app(RATELIMIT_INVOICE_MISSES="2 per minute").test_client()
    for _ in range(2):
        assert client.head(f"/invoice/{secrets.token_urlsafe(24)}").status_code == 404
    assert client.head(f"/invoice/{secrets.token_urlsafe(24)}").status_code == 429
    assert client.get(f"/invoice/{secrets.token_urlsafe(24)}").status_code == 429
    reader = make_app(RATELIMIT_INVOICE="2 per minute").test_client()
    path = _invoice_path(reader)
    assert [reader.head(path).status_code, reader.get(path).status_code] == [200, 200]
    assert reader.head(path).status_code == 429


@pytest.mark.parametrize(
    ("limit", "words", "longest"),
    [("2 per 10 minutes", "about 10 minutes", 600), ("2 per minute", "a minute", 60)],
)
def test_the_429_page_says_as_long_a_wait_as_its_retry_after(make_app, limit, words, longest):
    client = make_app(RATELIMIT_INVOICE_MISSES=limit).test_client()
    for _ in range(2):
        client.get(f"/invoice/{secrets.token_urlsafe(24)}")
    answer = client.get(f"/invoice/{secrets.token_urlsafe(24)}")
    _assert_html_429(answer)
    assert longest - 30 < int(answer.headers["Retry-After"]) <= longest + 1
    assert f"Please wait {words} and try again" in answer.get_data(as_text=True)


def test_wait_words():
    assert [wait_words(s) for s in (1, 29, 30, 60, 61, 100, 577, 3600, 7200)] == [
        "1 second",
        "29 seconds",
        "a minute",
        "a minute",
        "a minute",
        "about 2 minutes",
        "about 10 minutes",
        "about an hour",
        "about 2 hours",
    ]


def test_pay_button_is_limited(make_app):
    client = make_app(RATELIMIT_PAY="2 per minute").test_client()
    path = _invoice_path(client)
    for _ in range(2):
        assert client.post(path + "/pay").status_code == 303  # no Razorpay: back to the page
    _assert_html_429(client.post(path + "/pay"))
    assert client.get(path).status_code == 200  # viewing the invoice is a separate allowance


def test_pay_taps_count_per_invoice_and_guesses_count_as_guesses(make_app):
    """The Pay limit counted per address only, unknown tokens included: behind one carrier
    address (CGNAT), one customer's taps, or anyone's ten junk POSTs a minute, turned every
    other customer's Pay into a 429 (security probe). It now counts per address and invoice,
    and an unknown token's POST counts against the guessing limit, as the pages' do."""
    client = make_app(RATELIMIT_PAY="2 per minute", RATELIMIT_INVOICE_MISSES="3 per minute")
    client = client.test_client()
    first, second = _invoice_path(client), _invoice_path(client)
    for _ in range(2):
        assert client.post(first + "/pay").status_code == 303
    _assert_html_429(client.post(first + "/pay"))
    assert client.post(second + "/pay").status_code == 303  # another customer's invoice
    for guess in range(3):
        assert client.post(f"/invoice/{'G' * 31}{guess}/pay").status_code == 404
    _assert_html_429(client.post(f"/invoice/{'G' * 31}x/pay"))  # guessing, POST or GET alike
    assert client.get(f"/invoice/{'G' * 32}").status_code == 429
    assert client.post(second + "/pay").status_code == 303  # a real invoice is never a guess


def test_admin_sign_in_attempts_are_limited(make_app):
    client = make_app(RATELIMIT_LOGIN="2 per minute").test_client()
    for _ in range(2):
        assert client.post("/admin/login", data={"email": "x@example.com"}).status_code != 429
    _assert_html_429(client.post("/admin/login", data={"email": "x@example.com"}))
    assert client.get("/admin/login").status_code == 200  # the form itself stays reachable


def test_bik_is_not_limited_by_default_and_answers_json_when_the_operator_limits_it(make_app):
    client = make_app(RATELIMIT_INVOICE="1 per minute").test_client()
    order_id = place(client).get_json()["order"]["id"]
    assert all(get(client, order_id).status_code == 200 for _ in range(30))
    limited = make_app(RATELIMIT_BIK="2 per minute").test_client()
    assert [get(limited, order_id).status_code for _ in range(2)] == [200, 200]
    answer = get(limited, order_id)
    assert answer.status_code == 429
    assert answer.get_json()["error"]["code"] == "too_many_requests"
    assert "Too many requests" in answer.get_json()["error"]["message"]


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # about Redis, not the database
def test_redis_keeps_one_count_across_gunicorn_workers(gunicorn):
    prefix = f"bikshop-test-{secrets.token_hex(4)}"
    server = gunicorn(
        workers=3,
        env={
            "BIKSHOP_REDIS_URL": "redis://127.0.0.1:6379/0",
            "BIKSHOP_RATELIMIT_KEY_PREFIX": prefix,
            "BIKSHOP_RATELIMIT_INVOICE_MISSES": "4 per minute",
        },
    )
    statuses = [
        requests.get(f"{server.url}/invoice/{secrets.token_urlsafe(24)}", timeout=10).status_code
        for _ in range(12)
    ]
    # Spread over three workers, the misses still meet one shared limit.
    assert statuses == [404] * 4 + [429] * 8


def test_the_limiter_hooks_run_only_on_limited_routes(make_app):
    """Flask-Limiter's app-wide hooks move to the blueprints of the routes that have a limit,
    gated there to those routes (ratelimit.py)."""
    app = make_app()
    limited = app.extensions["bikshop.rate_limited"]
    assert {"invoice.page", "invoice.pdf", "payments.pay", "admin.login"} <= limited
    assert not {"bik.place_order", "bik.get_order", "health.healthz"} & limited

    def gated(funcs, blueprint):
        return [h.__name__ for h in funcs.get(blueprint, []) if h.__name__.startswith("limited")]

    for funcs in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        assert not gated(funcs, None)  # nothing app-wide: Bik's calls run none of them
        assert not gated(funcs, "bik") and not gated(funcs, "health")
        assert not [h for h in funcs[None] if getattr(h, "__self__", None) is limiter]
        for blueprint in ("invoice", "payments", "admin"):
            assert len(gated(funcs, blueprint)) == 1
            assert funcs[blueprint][0].__name__.startswith("limited")  # keeps its turn
    assert gated(app.teardown_request_funcs, "admin") == ["limited_only___release_context"]
    with_bik = make_app(RATELIMIT_BIK="5 per minute")
    assert {"bik.place_order", "bik.get_order"} <= with_bik.extensions["bikshop.rate_limited"]
    answer = get(with_bik.test_client(), "ORD-1")
    assert answer.status_code == 404 and answer.headers["X-RateLimit-Limit"] == "5"
    assert "X-RateLimit-Limit" not in get(app.test_client(), "ORD-1").headers


def test_with_redis_down_requests_go_through_and_the_log_says_so_once_a_minute(
    make_app, caplog, monkeypatch
):
    """Redis unreachable: the limits fail open (the shop keeps selling) and the log says so in
    one warning line, not a traceback each, and not a line for every request of a busy shop
    (operations probe): at most one a minute, counting those it left out."""
    import logging

    from bikshop import logging as json_logs

    (throttle,) = [
        f
        for f in logging.getLogger("flask-limiter").filters
        if isinstance(f, json_logs._OneLineSwallowed)
    ]
    monkeypatch.setattr(throttle, "_last", None)
    client = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client()
    path = _invoice_path(client)
    caplog.set_level(logging.INFO, logger="flask-limiter")
    for _ in range(3):
        assert client.get(path).status_code == 200
    swallowed = [r for r in caplog.records if r.name == "flask-limiter"]
    assert len(swallowed) == 1, [r.getMessage() for r in swallowed]
    (record,) = swallowed
    assert record.levelname == "WARNING" and record.exc_info is None
    assert record.getMessage().startswith(
        "rate limits not checked, requests let through: the limiter's storage failed "
        "(ConnectionError: "
    ), record.getMessage()
    assert "\n" not in record.getMessage()
    monkeypatch.setattr(throttle, "_last", throttle._last - throttle.EVERY_SECONDS)  # a minute on
    assert client.get(path).status_code == 200
    later = [r for r in caplog.records if r.name == "flask-limiter"][1:]
    assert len(later) == 1 and "; 2 more since the last line)" in later[0].getMessage()
