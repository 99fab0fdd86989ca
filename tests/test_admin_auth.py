"""Dashboard sign-in: strangers are refused everywhere, throttling, safe redirects, cookies."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from bikshop import create_app
from tests.admin_support import (
    OWNER,
    PASSWORD,
    add_admin,
    csrf_token,
    place_order,
    sign_in,
)
from tests.conftest import BASE_CONFIG


def _admin_routes() -> list[tuple[str, str, str]]:
    """(endpoint, method, rule) for every /admin route, read from the app's own URL map."""
    app = create_app({**BASE_CONFIG, "DATABASE_URL": "sqlite://"})
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/admin") and rule.endpoint != "admin.login":
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                found.append((rule.endpoint, method, rule.rule))
    return found


ADMIN_ROUTES = _admin_routes()


def test_the_route_list_covers_the_dashboard():
    endpoints = {endpoint for endpoint, _, _ in ADMIN_ROUTES}
    assert {"admin.orders", "admin.order", "admin.export_csv", "admin.change_status"} <= endpoints


@pytest.mark.parametrize(("endpoint", "method", "rule"), ADMIN_ROUTES)
def test_every_admin_route_refuses_a_stranger(admin_app, endpoint, method, rule):
    client = admin_app.test_client()
    order = place_order(client)
    url = re.sub(r"<(?:\w+:)?public_id>", order["id"], rule)
    assert "<" not in url, f"give {rule} a sample value in this test"
    answer = client.open(url, method=method, data={"status": "CANCELLED"})
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/admin/login?next=")
    assert order["name"] not in answer.text
    after = client.post("/bik/getOrder", json={"orderId": order["id"]}).json["order"]
    assert (after["status"], after["paymentStatus"]) == ("ORDERED", "pending")


def test_sign_in_sets_a_secure_httponly_lax_session_and_sign_out_needs_csrf(admin_app):
    add_admin(admin_app)
    client = admin_app.test_client()
    answer = sign_in(client)
    assert answer.status_code == 303
    cookie = answer.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/admin/")
    assert page.status_code == 200 and OWNER in page.text

    assert client.post("/admin/logout").status_code == 400
    assert client.post("/admin/logout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/admin/").status_code == 200  # still signed in
    out = client.post("/admin/logout", data={"csrf_token": csrf_token(page.text)})
    assert out.status_code == 303
    assert client.get("/admin/").status_code == 302


def test_the_dashboard_s_script_and_stylesheet_are_versioned_by_their_content(admin_app):
    """admin.js and admin.css had bare addresses, which the shipped nginx site keeps 7 days:
    after an upgrade a browser ran last week's script against the new page (network probe).
    Each address now carries its content's hash and is kept a year under it."""
    import hashlib
    from pathlib import Path

    html = admin_app.test_client().get("/admin/login").text
    for name in ("admin.css", "admin.js"):
        match = re.search(rf'"(/static/{re.escape(name)}\?v=([0-9a-f]{{8}}))"', html)
        assert match, name
        content = Path(admin_app.static_folder, name).read_bytes()
        assert match.group(2) == hashlib.sha256(content).hexdigest()[:8]
        with admin_app.test_client().get(match.group(1)) as asset:
            assert asset.status_code == 200 and asset.cache_control.max_age == 365 * 24 * 3600
        # Any other version (an old worker answering a new page's address mid-restart) is not
        # kept a year: a stale file would stay a year under the new address (diff review).
        with admin_app.test_client().get(f"/static/{name}?v=0badc0de") as other:
            assert other.status_code == 200
            assert other.cache_control.max_age != 365 * 24 * 3600
    # A path out of the static folder is never read to be hashed.
    outside = admin_app.test_client().get("/static/../bikshop/__init__.py?v=0badc0de")
    assert outside.status_code == 404


def test_insecure_cookies_setting_allows_plain_http_sessions(make_app):
    app = make_app(INSECURE_COOKIES=True, RATELIMIT_ENABLED=False)
    add_admin(app)
    cookie = sign_in(app.test_client()).headers["Set-Cookie"]
    assert "Secure" not in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_sign_in_refuses_a_missing_or_forged_csrf_token(admin_app):
    add_admin(admin_app)
    client = admin_app.test_client()
    client.get("/admin/login")  # the session cookie, as a browser has it
    for token in (None, "forged-token"):
        data = {"email": OWNER, "password": PASSWORD}
        if token:
            data["csrf_token"] = token
        answer = client.post("/admin/login", data=data)
        assert answer.status_code == 400
        assert "expired" in answer.text
    assert client.get("/admin/").status_code == 302


def test_wrong_password_is_refused_without_saying_which_part(admin_app):
    add_admin(admin_app)
    client = admin_app.test_client()
    wrong_password = sign_in(client, password="not the password")
    unknown_email = sign_in(client, email="nobody@glow.example")
    for answer in (wrong_password, unknown_email):
        assert answer.status_code == 401
        assert "Wrong email or password." in answer.text


def test_an_account_is_locked_after_repeated_failures(make_app):
    app = make_app(RATELIMIT_ENABLED=False, ADMIN_LOGIN_MAX_FAILURES=3)
    add_admin(app)
    add_admin(app, email="partner@glow.example")
    client = app.test_client()
    for _ in range(3):
        assert sign_in(client, password="guess").status_code == 401
    locked = sign_in(client)  # the right password, too late
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.text
    assert client.get("/admin/").status_code == 302
    # Another account from another address is not affected.
    other = app.test_client()
    answer = sign_in(other, email="partner@glow.example", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert answer.status_code == 303


def test_a_stranger_guessing_the_owners_password_cannot_lock_the_owner_out(make_app):
    """Failures from elsewhere lock the account for the addresses that failed (and for each
    further address after its one guess), not for the owner's own: knowing the owner's email
    and failing five times every quarter hour kept the owner out for good."""
    app = make_app(RATELIMIT_ENABLED=False, ADMIN_LOGIN_MAX_FAILURES=3)
    add_admin(app)
    attacker = app.test_client()
    for _ in range(3):
        assert sign_in(attacker, password="guess").status_code == 401
    assert sign_in(attacker).status_code == 429  # the attacker's address: locked
    second = {"REMOTE_ADDR": "203.0.113.8"}  # another of the attacker's addresses
    assert sign_in(attacker, password="guess", environ_base=second).status_code == 401
    assert sign_in(attacker, environ_base=second).status_code == 429  # its one guess spent
    owner = app.test_client()
    home = {"REMOTE_ADDR": "198.51.100.4"}
    assert sign_in(owner, environ_base=home).status_code == 303
    assert owner.get("/admin/", environ_base=home).status_code == 200


def test_guesses_from_many_addresses_lock_the_account_at_its_ceiling(make_app):
    """Each new address had one guess at a locked account, so a botnet's guesses were
    unbounded (security probe). Past ten times the allowance, from all addresses together,
    the account is locked for every address but the browsers it signed in on before; a new
    password lifts the lock."""
    from bikshop.admin.auth import DEVICE_COOKIE
    from bikshop.services import admins

    app = make_app(RATELIMIT_ENABLED=False, ADMIN_LOGIN_MAX_FAILURES=2)
    add_admin(app)
    laptop = app.test_client()  # the owner's own browser, signed in on before the attack
    assert sign_in(laptop, environ_base={"REMOTE_ADDR": "192.0.2.10"}).status_code == 303
    page = laptop.get("/admin/")
    laptop.post("/admin/logout", data={"csrf_token": csrf_token(page.text)})
    client = app.test_client()
    ceiling = 2 * admins.ACCOUNT_CEILING
    for n in range(ceiling):
        guess = sign_in(client, password="guess", environ_base={"REMOTE_ADDR": f"10.0.{n}.1"})
        assert guess.status_code == 401, n
    home = {"REMOTE_ADDR": "198.51.100.4"}  # an address that never failed
    assert sign_in(client, environ_base=home).status_code == 429
    # The owner's browser is not held by it (review probe: fifty addresses failing every
    # quarter hour would else keep the owner out for good), and a forged cookie is no key.
    assert sign_in(laptop, environ_base=home).status_code == 303
    forged = app.test_client()
    forged.set_cookie(DEVICE_COOKIE, "WyJvd25lckBnbG93LmV4YW1wbGUiXQ.forged", path="/admin/login")
    assert sign_in(forged, environ_base=home).status_code == 429
    with app.app_context():
        admins.set_password(OWNER, "a brand new passphrase")
    assert sign_in(client, password="a brand new passphrase", environ_base=home).status_code == 303


def _device_accounts(client) -> list:
    """What a browser's device cookie lists, read as anyone holding the browser can (it is
    signed, not encrypted)."""
    from itsdangerous import URLSafeTimedSerializer

    from bikshop.admin.auth import DEVICE_COOKIE

    cookie = client.get_cookie(DEVICE_COOKIE, path="/admin/login")
    return URLSafeTimedSerializer("not the key").loads_unsafe(cookie.value)[1]


def test_the_device_cookie_names_no_account_and_one_listing_emails_still_counts(make_app):
    """The device cookie showed the owner's email to anyone reading the browser's cookies
    (privacy probe): it keeps a keyed hash instead. A cookie written before, listing emails,
    still gets its browser past the ceiling, and is rewritten at that sign-in."""
    from itsdangerous import URLSafeTimedSerializer

    from bikshop.admin.auth import DEVICE_COOKIE
    from bikshop.services import admins

    app = make_app(RATELIMIT_ENABLED=False, ADMIN_LOGIN_MAX_FAILURES=2)
    add_admin(app)
    laptop = app.test_client()
    assert sign_in(laptop, environ_base={"REMOTE_ADDR": "192.0.2.10"}).status_code == 303
    (mark,) = _device_accounts(laptop)
    assert re.fullmatch(r"[0-9a-f]{32}", mark) and "owner" not in mark
    older = app.test_client()  # a browser the owner signed in on before this change
    listing = URLSafeTimedSerializer(app.secret_key, salt="bikshop-known-device").dumps([OWNER])
    older.set_cookie(DEVICE_COOKIE, listing, path="/admin/login")
    client = app.test_client()
    for n in range(2 * admins.ACCOUNT_CEILING):
        guess = sign_in(client, password="guess", environ_base={"REMOTE_ADDR": f"10.0.{n}.1"})
        assert guess.status_code == 401, n
    home = {"REMOTE_ADDR": "198.51.100.4"}
    assert sign_in(client, environ_base=home).status_code == 429
    assert sign_in(older, environ_base=home).status_code == 303
    assert _device_accounts(older) == [mark]


def test_addresses_of_one_ipv6_64_share_one_count(make_app):
    app = make_app(
        RATELIMIT_ENABLED=False, ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS=3, ADMIN_LOGIN_MAX_FAILURES=9
    )
    add_admin(app)
    client = app.test_client()
    for n in range(3):
        attacker = {"REMOTE_ADDR": f"2001:db8:7:7::{n + 1}"}
        email = f"guess{n}@glow.example"
        assert sign_in(client, email=email, environ_base=attacker).status_code == 401
    same_64 = {"REMOTE_ADDR": "2001:db8:7:7:abcd::1"}
    assert sign_in(client, environ_base=same_64).status_code == 429
    assert sign_in(client, environ_base={"REMOTE_ADDR": "2001:db8:7:8::1"}).status_code == 303


def test_an_address_is_locked_after_failures_across_accounts(make_app):
    app = make_app(
        RATELIMIT_ENABLED=False, ADMIN_LOGIN_MAX_FAILURES_PER_ADDRESS=3, ADMIN_LOGIN_MAX_FAILURES=9
    )
    add_admin(app)
    client = app.test_client()
    attacker = {"REMOTE_ADDR": "203.0.113.7"}
    for n in range(3):
        email = f"guess{n}@glow.example"
        assert sign_in(client, email=email, environ_base=attacker).status_code == 401
    assert sign_in(client, environ_base=attacker).status_code == 429
    # The owner, from home, still gets in: the lock is per address.
    home = app.test_client()
    assert sign_in(home, environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code == 303


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "https://evil.com",
        "/\\evil.com",
        "javascript:alert(1)",
        "///evil.com",
        "/%09/evil.com",
        "/admin\t//evil.com",
        "http:/evil.com",
        "/invoice/../../evil",
        # On this host, but not a dashboard page: outside it, or the sign-out.
        "/admin/../bik/getOrder",
        "/admin/%2e%2e/metrics",
        "/adminx//evil.com",
        "/admin//evil.com",
        "/admin/logout",
    ],
)
def test_next_never_leaves_the_dashboard(admin_app, target):
    add_admin(admin_app)
    answer = sign_in(admin_app.test_client(), next_url=target)
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/admin/"


def test_next_returns_to_the_dashboard_page_asked_for(admin_app):
    add_admin(admin_app)
    client = admin_app.test_client()
    first = client.get("/admin/?q=9876543210&status=open")
    assert first.status_code == 302
    login_page = client.get(first.headers["Location"])
    assert 'value="/admin/?q=9876543210&amp;status=open"' in login_page.text
    answer = sign_in(client, next_url="/admin/?q=9876543210&status=open")
    assert answer.headers["Location"] == "/admin/?q=9876543210&status=open"


def test_dashboard_pages_are_private_and_locked_down(owner):
    page = owner.get("/admin/")
    assert page.headers["Cache-Control"] == "no-store"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy


def test_an_action_posted_while_signed_out_returns_to_its_order_page(admin_app):
    add_admin(admin_app)
    client = admin_app.test_client()
    order = place_order(client)
    page = f"/admin/orders/{order['id']}"
    refused = client.post(f"{page}/cancel", data={"csrf_token": "from an old session"})
    assert refused.status_code == 302
    login_page = client.get(refused.headers["Location"])
    assert f'value="{page}"' in login_page.text  # not the action's URL, which only takes POST
    answer = sign_in(client, next_url=page)
    assert answer.headers["Location"] == page
    assert client.get(answer.headers["Location"]).status_code == 200
    after = client.post("/bik/getOrder", json={"orderId": order["id"]}).json["order"]
    assert after["status"] == "ORDERED"  # the action itself did not happen


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://other.localhost"},
        {"Origin": "https://evil.example"},  # a browser older than Sec-Fetch-Site
        {"Origin": "null"},  # a sandboxed frame, or a redirect from another site
    ],
)
def test_a_form_posted_from_another_site_changes_nothing_and_keeps_the_session(
    owner, admin_app, headers
):
    """Another site auto-submitting a form at a dashboard action: the browser sends no Lax
    cookie, the CSRF check failed, and the answer wrote a new session cookie over the owner's,
    signing the owner out (security probe). Now a 403 before the session is touched."""
    order = place_order(owner)
    page = owner.get(f"/admin/orders/{order['id']}")
    token = csrf_token(page.text)
    stranger = admin_app.test_client()  # the cross-site POST, without the owner's cookie
    for path in (f"/admin/orders/{order['id']}/cancel", "/admin/login", "/admin/logout"):
        refused = stranger.post(path, data={"csrf_token": "x"}, headers=headers)
        assert refused.status_code == 403, path
        assert "Set-Cookie" not in refused.headers, path
        assert "sent from another site" in refused.text
    # Even with the cookie and a valid token (a sibling site a Lax cookie still goes to).
    refused = owner.post(
        f"/admin/orders/{order['id']}/status",
        data={"csrf_token": token, "status": "IN PROGRESS"},
        headers=headers,
    )
    assert refused.status_code == 403 and "Set-Cookie" not in refused.headers
    assert owner.get("/admin/").status_code == 200  # still signed in
    bik = owner.post("/bik/getOrder", json={"orderId": order["id"]}).json["order"]
    assert bik["status"] == "ORDERED"
    # Without Sec-Fetch-Site (an older browser), an Origin naming this host is at home, on
    # whatever port or scheme a proxy in front hides (review probe): the refusal is not 403.
    for own in ("http://localhost", "https://localhost:8443"):
        answer = owner.post(f"/admin/orders/{order['id']}/status", headers={"Origin": own})
        assert answer.status_code != 403, own
    # The dashboard's own forms, as a browser sends them, still work.
    same = {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}
    sent = owner.post(
        f"/admin/orders/{order['id']}/status",
        data={"csrf_token": token, "status": "IN PROGRESS"},
        headers=same,
    )
    assert sent.status_code in (302, 303)
    bik = owner.post("/bik/getOrder", json={"orderId": order["id"]}).json["order"]
    assert bik["status"] == "IN PROGRESS"


def test_a_sign_out_posted_while_signed_out_returns_to_the_order_list(admin_app):
    client = admin_app.test_client()
    refused = client.post("/admin/logout")
    assert refused.status_code == 302
    assert refused.headers["Location"] == "/admin/login?next=/admin/"


def test_a_change_sent_after_signing_out_says_it_was_not_made(admin_app):
    """A page left open in one tab after signing out in another: its button leads to the
    sign-in page, which says the change was not made; signed in, the order is unchanged."""
    add_admin(admin_app)
    client = admin_app.test_client()
    order = place_order(client)
    sign_in(client)
    page = client.get(f"/admin/orders/{order['id']}")
    client.post("/admin/logout", data={"csrf_token": csrf_token(page.text)})
    sent = client.post(
        f"/admin/orders/{order['id']}/status",
        data={"csrf_token": csrf_token(page.text), "status": "IN PROGRESS"},
    )
    assert sent.status_code == 302
    login = client.get(sent.headers["Location"])
    assert re.findall(r'role="alert">([^<]*)</p>', login.text) == [
        "You were signed out, so that change was not made. Sign in, then try again."
    ]
    back = sign_in(client, next_url=f"/admin/orders/{order['id']}")
    assert back.headers["Location"] == f"/admin/orders/{order['id']}"
    assert "You were signed out" not in client.get(back.headers["Location"]).text
    bik = client.post("/bik/getOrder", json={"orderId": order["id"]}).json["order"]
    assert bik["status"] == "ORDERED"


def test_signing_out_twice_says_nothing_about_a_change(admin_app):
    add_admin(admin_app)
    client = admin_app.test_client()
    sign_in(client)
    page = client.get("/admin/")
    client.post("/admin/logout", data={"csrf_token": csrf_token(page.text)})
    again = client.post("/admin/logout", data={"csrf_token": csrf_token(page.text)})
    assert "You were signed out" not in client.get(again.headers["Location"]).text


def test_signing_in_over_plain_http_says_https_is_needed(make_app):
    """The session cookie is Secure, so over http a browser sends none back and the form's
    CSRF token can never match: the page names that, not an expired form."""
    app = make_app(RATELIMIT_ENABLED=False)
    add_admin(app)
    for base_url, says in [
        ("http://shop.example.com", "Signing in needs https"),
        ("https://shop.example.com", "This form expired"),
    ]:
        browser = app.test_client(use_cookies=False)  # as a browser over http: no cookie back
        page = browser.get("/admin/login", base_url=base_url)
        answer = browser.post(
            "/admin/login",
            data={"csrf_token": csrf_token(page.text), "email": OWNER, "password": PASSWORD},
            base_url=base_url,
        )
        assert answer.status_code == 400
        assert says in answer.text, base_url
    assert (
        "BIKSHOP_INSECURE_COOKIES"
        in app.test_client(use_cookies=False)
        .post("/admin/login", data={"email": OWNER}, base_url="http://shop.example.com")
        .text
    )


def _copied_session(client) -> str:
    return client.get_cookie("session").value


def _with_session(app, value: str):
    """Another browser holding a copy of a session cookie."""
    other = app.test_client()
    other.set_cookie("session", value)
    return other


def _sign_out(client) -> None:
    page = client.get("/admin/")
    answer = client.post("/admin/logout", data={"csrf_token": csrf_token(page.text)})
    assert answer.status_code == 303


def test_signing_out_ends_the_session_on_the_server(admin_app):
    """A copy of the cookie (a shared phone, a proxy log) opens nothing once signed out."""
    add_admin(admin_app)
    client = admin_app.test_client()
    sign_in(client)
    copied = _copied_session(client)
    assert _with_session(admin_app, copied).get("/admin/").status_code == 200
    _sign_out(client)
    assert _with_session(admin_app, copied).get("/admin/").status_code == 302


def test_each_browser_signs_out_on_its_own(admin_app):
    add_admin(admin_app)
    phone, laptop = admin_app.test_client(), admin_app.test_client()
    sign_in(phone)
    sign_in(laptop)
    _sign_out(laptop)
    assert phone.get("/admin/").status_code == 200
    assert laptop.get("/admin/").status_code == 302


def test_a_disabled_account_enabled_again_must_sign_in_again(admin_app):
    from bikshop.services.admins import set_active

    add_admin(admin_app)
    client = admin_app.test_client()
    sign_in(client)
    copied = _copied_session(client)
    with admin_app.app_context():
        set_active(OWNER, False)
    assert client.get("/admin/").status_code == 302
    with admin_app.app_context():
        set_active(OWNER, True)
    assert _with_session(admin_app, copied).get("/admin/").status_code == 302
    assert sign_in(client).status_code == 303 and client.get("/admin/").status_code == 200


def test_a_session_ends_after_its_lifetime_and_only_a_hash_of_its_key_is_stored(admin_app):
    import hashlib

    from sqlalchemy import update

    from bikshop.extensions import db
    from bikshop.models import AdminSession
    from bikshop.models.types import utcnow
    from bikshop.services.admins import SESSION_LIFETIME

    add_admin(admin_app)
    client = admin_app.test_client()
    sign_in(client)
    with client.session_transaction() as cookie:
        admin_id, _, key = cookie["_user_id"].partition(".")
    with admin_app.app_context():
        [stored] = db.session.scalars(db.select(AdminSession)).all()
        assert (str(stored.admin_id), stored.key_hash) == (
            admin_id,
            hashlib.sha256(key.encode()).hexdigest(),
        )
        assert key not in stored.key_hash
        db.session.execute(
            update(AdminSession).values(created_at=utcnow() - SESSION_LIFETIME - SESSION_LIFETIME)
        )
        db.session.commit()
    assert client.get("/admin/").status_code == 302


def test_sign_ins_are_logged_without_what_was_typed_for_unknown_accounts(make_app, caplog):
    """Failed and locked sign-ins are an operator's first sign of an attack: each is logged
    with the address, and the account only when it exists (a mistyped email field often holds
    a password). Passwords never are."""
    app = make_app(RATELIMIT_ENABLED=False, ADMIN_LOGIN_MAX_FAILURES=2)
    add_admin(app)
    add_admin(app, email="partner@glow.example")
    client = app.test_client()
    caplog.set_level(logging.INFO, logger="bikshop.services.admins")
    attacker = {"REMOTE_ADDR": "203.0.113.7"}
    assert sign_in(client, email="Hunter2-typo@x", environ_base=attacker).status_code == 401
    assert sign_in(client, password="guess-one", environ_base=attacker).status_code == 401
    assert sign_in(client, password="guess-two", environ_base=attacker).status_code == 401
    assert sign_in(client, environ_base=attacker).status_code == 429
    assert sign_in(app.test_client(), email="partner@glow.example").status_code == 303
    lines = [
        (r.getMessage(), getattr(r, "account", "-"), getattr(r, "address", "-"))
        for r in caplog.records
    ]
    assert lines == [
        ("dashboard sign-in failed: unknown account", None, "203.0.113.7"),
        ("dashboard sign-in failed: wrong password", OWNER, "203.0.113.7"),
        ("dashboard sign-in failed: wrong password", OWNER, "203.0.113.7"),
        ("dashboard sign-in refused: too many recent failures", OWNER, "203.0.113.7"),
        ("dashboard sign-in", "partner@glow.example", "127.0.0.1"),
    ]
    assert [r.levelname for r in caplog.records] == ["WARNING"] * 4 + ["INFO"]
    logged = caplog.text + repr([vars(r) for r in caplog.records])
    for typed in ("Hunter2-typo", "guess-one", "guess-two", PASSWORD):
        assert typed not in logged


def test_the_sign_out_address_opened_as_a_page_offers_the_button(owner):
    page = owner.get("/admin/logout")
    assert page.status_code == 200
    assert "Sign out?" in page.text and f"You are signed in as {OWNER}." in page.text
    assert owner.get("/admin/").status_code == 200  # opening it signed nobody out
    out = owner.post("/admin/logout", data={"csrf_token": csrf_token(page.text)})
    assert out.status_code == 303 and owner.get("/admin/").status_code == 302


def test_a_one_minute_lock_says_minute(make_app):
    app = make_app(RATELIMIT_ENABLED=False, ADMIN_LOGIN_MAX_FAILURES=1, ADMIN_LOGIN_LOCK_MINUTES=1)
    add_admin(app)
    client = app.test_client()
    assert sign_in(client, password="guess").status_code == 401
    locked = sign_in(client)
    assert locked.status_code == 429 and "Try again in 1 minute." in locked.text


def test_a_sign_in_that_has_ended_is_explained_once(admin_app):
    """A browser coming back after its sign-in expired (or its password was changed) is sent
    to the sign-in page with a word why, once; a visitor who never signed in is told nothing."""
    from bikshop.extensions import db
    from bikshop.models import AdminSession
    from bikshop.services.admins import SESSION_LIFETIME

    add_admin(admin_app)
    client = admin_app.test_client()
    sign_in(client)
    assert client.get("/admin/").status_code == 200
    with admin_app.app_context():
        for row in db.session.scalars(select(AdminSession)):
            row.created_at -= SESSION_LIFETIME + timedelta(minutes=1)
        db.session.commit()

    def notices(page) -> list[str]:
        return re.findall(r'role="(?:status|alert)">([^<]*)</p>', page.text)

    sent_away = client.get("/admin/orders/ORD-1")
    assert sent_away.status_code == 302
    told = notices(client.get(sent_away.headers["Location"]))
    assert told == [
        "Your sign-in has ended: a sign-in lasts 30 days, and ends when the password is changed "
        "or the account switched off. Please sign in again."
    ]
    again = client.get("/admin/")
    assert again.status_code == 302
    assert notices(client.get(again.headers["Location"])) == []
    stranger = admin_app.test_client()
    assert notices(stranger.get(stranger.get("/admin/").headers["Location"])) == []
    assert sign_in(client).status_code == 303
    assert client.get("/admin/").status_code == 200
