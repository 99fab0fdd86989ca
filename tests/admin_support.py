"""Shared pieces for the dashboard tests: an app with CSRF on, an admin, a signed-in client."""

from __future__ import annotations

import re
from functools import cache

import pytest
from werkzeug.security import generate_password_hash

from tests.bik import place, sample_body

OWNER = "owner@glow.example"
PASSWORD = "correct horse battery staple"
# CSRF stays ON (Flask-WTF's default): these tests prove the forms refuse forged posts.
# The address-based limiter of the production helper is not what these tests measure.
ADMIN_CONFIG = {"RATELIMIT_ENABLED": False}


@cache
def password_hash(password: str) -> str:
    # A lighter scrypt cost than production's keeps the suite fast; sign-in checks it with the
    # same code (the cost is read from the stored hash). The CLI tests use the real cost.
    return generate_password_hash(password, method="scrypt:4096:8:1")


def add_admin(app, email: str = OWNER, password: str = PASSWORD, active: bool = True):
    """Store an admin account directly (the CLI has its own tests)."""
    from bikshop.extensions import db
    from bikshop.models import AdminUser

    with app.app_context():
        db.session.add(AdminUser(email=email, password_hash=password_hash(password), active=active))
        db.session.commit()


def csrf_token(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(client, email: str = OWNER, password: str = PASSWORD, next_url: str = "", **kw):
    """Sign in through the form, as a browser does; returns the POST's response."""
    page = client.get("/admin/login", **kw)
    return client.post(
        "/admin/login",
        data={
            "csrf_token": csrf_token(page.text),
            "email": email,
            "password": password,
            "next": next_url,
        },
        **kw,
    )


def place_order(client, **changes) -> dict:
    """Place an order through Bik's placeOrder; returns Bik's view of it."""
    answer = place(client, sample_body(**changes))
    assert answer.status_code == 200, answer.text
    return answer.json["order"]


def order_names(html: str) -> list[str]:
    """The order names listed on the orders page, top to bottom."""
    return re.findall(r'<a [^>]*href="/admin/orders/[^"]+"[^>]*><strong>(#\d+)</strong>', html)


@pytest.fixture
def admin_app(make_app):
    return make_app(**ADMIN_CONFIG)


@pytest.fixture
def owner(admin_app):
    """A test client signed in as the shop owner."""
    add_admin(admin_app)
    client = admin_app.test_client()
    assert sign_in(client).status_code == 303
    return client
