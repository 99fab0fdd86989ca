"""Security headers on every answer, proxy headers trusted only as configured, trusted hosts."""

from __future__ import annotations

import secrets

import pytest

from bikshop.security import DEFAULT_CSP
from tests.bik import place, sample_body, stored_state

HTML_PAGES = ["/invoice/{token}", "/admin/login", "/invoice/{missing}", "/admin/nowhere"]


@pytest.fixture
def invoice_token(client):
    return place(client).get_json()["order"]["invoiceUrl"].rsplit("/invoice/", 1)[1]


@pytest.mark.parametrize("path", HTML_PAGES)
def test_every_html_page_refuses_framing_sniffing_and_foreign_scripts(client, invoice_token, path):
    answer = client.get(path.format(token=invoice_token, missing=secrets.token_urlsafe(24)))
    assert answer.mimetype == "text/html"
    headers = answer.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] in ("no-referrer", "same-origin")  # never to other sites
    policy = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert _script_sources(policy) in ("'self'", "'none'")
    assert "unsafe-eval" not in policy


def _script_sources(policy: str) -> str:
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    return directives.get("script-src", directives.get("default-src"))


def test_a_page_without_its_own_policy_gets_the_default(client):
    answer = client.get("/nowhere", headers={"Accept": "text/html"})  # the 404 error page
    assert answer.status_code == 404
    assert answer.mimetype == "text/html"
    assert answer.headers["Content-Security-Policy"] == DEFAULT_CSP


def test_a_stricter_policy_set_by_the_view_is_kept(client, invoice_token):
    policy = client.get(f"/invoice/{invoice_token}").headers["Content-Security-Policy"]
    assert policy != DEFAULT_CSP  # the invoice sets its own; the default never overrides it


# (method, path, status, tries): error pages of every kind, and the Pay address opened by hand.
INVOICE_ANSWERS = [
    ("GET", "/invoice/{token}/paid", 400, 1),  # the confirmation link without its query
    ("GET", "/invoice/{token}/nowhere", 404, 1),  # no route, under a real invoice
    ("GET", "/invoice/../{token}", 404, 1),
    ("PUT", "/invoice/{token}", 405, 1),
    ("DELETE", "/invoice/{token}/pay", 405, 1),
    ("GET", "/invoice/{token}/pay", 303, 1),  # reloaded after "couldn't start the payment"
    ("GET", "/invoice/{missing}", 429, 2),  # the second guess is over the limit
]


@pytest.mark.parametrize("method, path, status, tries", INVOICE_ANSWERS)
def test_every_answer_under_invoice_carries_the_invoice_headers(
    make_app, method, path, status, tries
):
    """The token is in the URL: whatever is answered there must not be cached by a proxy,
    indexed, or sent on as a referrer, and gets the invoice's own strict policy."""
    client = make_app(RATELIMIT_INVOICE_MISSES="1 per minute").test_client()
    token = place(client).get_json()["order"]["invoiceUrl"].rsplit("/invoice/", 1)[1]
    url = path.format(token=token, missing=secrets.token_urlsafe(24))
    answers = [client.open(url, method=method) for _ in range(tries)]
    headers = answers[-1].headers
    assert answers[-1].status_code == status
    assert headers["Cache-Control"] == "private, no-cache"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "noindex" in headers["X-Robots-Tag"]
    assert headers["Content-Security-Policy"].startswith("default-src 'none'; style-src 'self'")


def test_json_answers_are_not_sniffable_and_carry_no_page_policy(client):
    answer = client.post("/bik/getOrder", json={"orderId": "ORD-404"})
    assert answer.status_code == 404
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in answer.headers


def test_forwarded_proto_is_ignored_unless_a_proxy_is_trusted(make_app):
    direct = make_app().test_client()
    answer = direct.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in answer.headers
    proxied = make_app(PROXY_FIX_X_PROTO=1).test_client()
    answer = proxied.get("/healthz", headers={"X-Forwarded-Proto": "https"})
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_forwarded_host_builds_links_only_behind_a_trusted_proxy(make_app):
    proxied = make_app(PROXY_FIX_X_HOST=1, PROXY_FIX_X_PROTO=1).test_client()
    headers = {"X-Forwarded-Host": "shop.example.com", "X-Forwarded-Proto": "https"}
    url = place(proxied, headers=headers).get_json()["order"]["invoiceUrl"]
    assert url.startswith("https://shop.example.com/invoice/")
    direct = make_app().test_client()
    url = place(direct, headers=headers).get_json()["order"]["invoiceUrl"]
    assert url.startswith("http://localhost/invoice/")


def test_a_proxys_path_prefix_is_in_the_invoice_url(make_app):
    """Behind a proxy serving the shop under /shop (X-Forwarded-Prefix), the invoice page's own
    links had the prefix and Bik's invoiceUrl, from which the customer opens it, did not."""
    proxied = make_app(PROXY_FIX_X_HOST=1, PROXY_FIX_X_PROTO=1, PROXY_FIX_X_PREFIX=1)
    client = proxied.test_client()
    headers = {
        "X-Forwarded-Host": "shop.example.com",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Prefix": "/shop",
    }
    url = place(client, headers=headers).get_json()["order"]["invoiceUrl"]
    assert url.startswith("https://shop.example.com/shop/invoice/")
    token = url.rsplit("/", 1)[1]
    page = client.get(f"/invoice/{token}", headers=headers)
    assert page.status_code == 200
    assert f'href="/shop/invoice/{token}.pdf"' in page.text
    # A prefix that is not a path would change the link's host, or its meaning (review probe).
    for prefix, starts in (
        ("@evil.example", "https://shop.example.com/invoice/"),
        (".evil.example", "https://shop.example.com/invoice/"),
        ("/shop?x=", "https://shop.example.com/shop%3Fx=/invoice/"),
        ("/shop#x", "https://shop.example.com/shop%23x/invoice/"),
    ):
        url = place(client, headers=headers | {"X-Forwarded-Prefix": prefix}).json["order"]
        assert url["invoiceUrl"].startswith(starts), (prefix, url["invoiceUrl"])


def test_only_trusted_hosts_are_served(make_app):
    client = make_app(TRUSTED_HOSTS="shop.example.com, 127.0.0.1").test_client()
    assert client.get("/healthz", headers={"Host": "shop.example.com"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "127.0.0.1"}).status_code == 200
    answer = client.post("/bik/getOrder", json={"orderId": "x"}, headers={"Host": "evil.example"})
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("path", ["/admin/login", "/admin/", "/invoice/abc", "/nowhere"])
def test_an_untrusted_host_gets_a_400_page_not_a_500(make_app, path, caplog):
    """A scanner's Host on a page for people: the error page renders (with its stylesheet and,
    under /invoice/, the invoice's privacy headers) and nothing is logged as an error."""
    client = make_app(TRUSTED_HOSTS="shop.example.com").test_client()
    answer = client.get(path, headers={"Host": "evil.example", "Accept": "text/html"})
    assert answer.status_code == 400
    assert "not trusted" in answer.text and "/static/invoice.css?v=" in answer.text
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    if path.startswith("/invoice/"):
        assert answer.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the page, not the database
def test_the_default_policy_lets_the_error_page_render_cleanly(make_app, desktop_page, gunicorn):
    server = gunicorn(workers=1)
    refused = []
    desktop_page.on("console", lambda m: refused.append(m.text) if "Refused" in m.text else None)
    answer = desktop_page.goto(f"{server.url}/nowhere")
    assert answer.status == 404
    assert answer.headers["content-security-policy"] == DEFAULT_CSP
    assert desktop_page.locator("h1").inner_text()
    assert refused == []


def test_api_answers_do_not_vary_on_cookies(client):
    """No session is read for a Bik call (the dashboard's sign-in hook runs on its own routes)."""
    answer = client.post("/bik/getOrder", json={"orderId": "ORD-1"})
    assert answer.status_code == 404
    assert "Vary" not in answer.headers
    assert "Set-Cookie" not in answer.headers


def test_bik_calls_open_no_session_and_other_routes_do(app):
    """Bik's API gets Flask's null session, even with a cookie; the dashboard gets a real one."""
    from flask import session

    cookie = {"Cookie": "session=anything"}
    with app.test_request_context("/bik/getOrder", method="POST", headers=cookie):
        assert app.session_interface.is_null_session(session)
    with app.test_request_context("/admin/login", headers=cookie):
        assert not app.session_interface.is_null_session(session)


def test_trusted_hosts_match_whatever_the_case(make_app):
    client = make_app(TRUSTED_HOSTS="Shop.Example.com").test_client()
    for host in ("shop.example.com", "SHOP.EXAMPLE.COM", "Shop.Example.Com:443"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    placed = place(client, headers={"Host": "SHOP.example.com"}).get_json()["order"]
    assert placed["invoiceUrl"].startswith("http://shop.example.com/invoice/")
    assert client.get("/healthz", headers={"Host": "evil.example"}).status_code == 400


def test_the_invoice_url_from_a_request_is_http_or_https_on_a_lowercase_host(make_app):
    """Without BIKSHOP_PUBLIC_URL the link comes from the request: a forwarded scheme that is
    not https (X-Forwarded-Proto: javascript, trusted through ProxyFix) gives http, and the
    host is lowercased, so the same order gets one link however Bik spells the host."""
    client = make_app(PROXY_FIX_X_PROTO=1).test_client()
    spoofed = {"Host": "SHOP.Example.com", "X-Forwarded-Proto": "javascript"}
    link = place(client, headers=spoofed).get_json()["order"]["invoiceUrl"]
    assert link.startswith("http://shop.example.com/invoice/")
    secure = {"Host": "shop.example.com", "X-Forwarded-Proto": "https"}
    assert (
        place(client, headers=secure)
        .get_json()["order"]["invoiceUrl"]
        .startswith("https://shop.example.com/invoice/")
    )


def test_a_request_without_a_host_header_is_a_400_not_a_link_to_the_bind_address(make_app):
    """HTTP/1.0 allows no Host at all; Werkzeug then builds the host from the address the
    server listens on (127.0.0.1:8000), which no customer can open."""
    from werkzeug.test import EnvironBuilder

    app = make_app()
    before = stored_state(app)
    environ = EnvironBuilder(
        "/bik/placeOrder", method="POST", json=sample_body(), base_url="http://127.0.0.1:8000"
    ).get_environ()
    del environ["HTTP_HOST"]
    statuses = []
    body = b"".join(app(environ, lambda status, headers, *_: statuses.append(status)))
    assert statuses[0].startswith("400"), body
    assert b"Host header" in body
    assert stored_state(app) == before


@pytest.mark.parametrize("host", ["", "a b", "<script>", "shop_1.example.com"])
def test_without_a_usable_host_placeorder_is_a_400_and_stores_nothing(make_app, host):
    """Werkzeug reads a missing or malformed Host as empty: the invoiceUrl would be http:///…"""
    app = make_app()
    client = app.test_client()
    before = stored_state(app)
    answer = place(client, headers={"Host": host})
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert "Host header" in answer.get_json()["error"]["message"]
    assert stored_state(app) == before
    configured = make_app(PUBLIC_URL="https://shop.example.com").test_client()
    placed = place(configured, headers={"Host": host})
    assert placed.status_code == 200
    assert placed.get_json()["order"]["invoiceUrl"].startswith("https://shop.example.com/invoice/")
