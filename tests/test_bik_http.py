"""The HTTP edges Bik and a load balancer meet: probes, methods, sizes, types, unknown routes."""

from __future__ import annotations

import json

import pytest

from bikshop import create_app
from tests.bik import assert_error_shape, bik_app_fixture, sample_body  # noqa: F401
from tests.conftest import BASE_CONFIG
from tests.servers import free_port


def test_healthz_answers_without_touching_anything(bik_app):
    response = bik_app.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_reports_the_database_and_migrations(bik_app):
    response = bik_app.test_client().get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["migrations"]["current"] == body["migrations"]["head"] is not None


UNREACHABLE = {
    "sqlite": "sqlite:////nonexistent-bikshop-dir/db.sqlite3",
    "postgresql": f"postgresql://postgres@127.0.0.1:{free_port()}/bikshop",  # a closed port
}


@pytest.fixture(params=list(UNREACHABLE))
def unreachable_app(request):
    app = create_app({**BASE_CONFIG, "DATABASE_URL": UNREACHABLE[request.param]})
    yield app
    with app.app_context():
        from bikshop.database import dispose_engines

        dispose_engines()


def test_readyz_is_503_json_when_the_database_is_unreachable(unreachable_app):
    response = unreachable_app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "unreachable"}
    assert response.headers["Retry-After"] == "5"  # as every other 503 says when to ask again
    assert unreachable_app.test_client().get("/healthz").status_code == 200


def test_bik_endpoints_answer_503_not_500_when_the_database_is_unreachable(unreachable_app):
    client = unreachable_app.test_client()
    for path, body in (("/bik/placeOrder", sample_body()), ("/bik/getOrder", {"orderId": "x"})):
        response = client.post(path, json=body)
        error = assert_error_shape(response, 503)
        assert error["code"] == "service_unavailable"
        assert response.headers["Retry-After"] == "5"


@pytest.mark.parametrize("path", ["/bik/placeOrder", "/bik/getOrder"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405_in_the_error_shape(bik_app, path, method):
    response = bik_app.test_client().open(path, method=method, json={})
    error = assert_error_shape(response, 405)
    assert error["code"] == "method_not_allowed"
    assert method in error["message"] and "POST" in error["message"]
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize("path", ["/bik/placeOrder", "/bik/getOrder"])
def test_a_body_over_one_mebibyte_is_413_in_the_error_shape(bik_app, path):
    body = json.dumps({**sample_body(), "padding": "x" * (1 << 20)})
    response = bik_app.test_client().post(
        path, data=body, headers={"Content-Type": "application/json"}
    )
    error = assert_error_shape(response, 413)
    assert error["code"] == "payload_too_large"


@pytest.mark.parametrize("path", ["/bik/placeOrder", "/bik/getOrder"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data"])
def test_a_non_json_content_type_is_415_in_the_error_shape(bik_app, path, content_type):
    response = bik_app.test_client().post(
        path, data=b'{"orderId": "ORD-1001"}', headers={"Content-Type": content_type}
    )
    error = assert_error_shape(response, 415)
    assert error["code"] == "unsupported_media_type"
    assert content_type in error["message"] and "application/json" in error["message"]


@pytest.mark.parametrize(
    "path, bik_hint",
    [
        ("/bik/nope", True),
        ("/bik/placeorder", True),
        # A root URL Bik added the endpoint's name to: the host alone, or the full URL.
        ("/placeOrder", True),
        ("/getOrder/", True),
        ("/bik/placeOrder/placeOrder", True),
        ("/bik", True),  # the root URL entered where Bik asks for an endpoint's
        ("/nope", False),
        ("/api/orders", False),
    ],
)
def test_an_unknown_route_is_404_in_the_error_shape(bik_app, path, bik_hint):
    response = bik_app.test_client().post(path, json={"orderId": "ORD-1001"})
    error = assert_error_shape(response, 404)
    assert error["code"] == "not_found"
    # A mistyped onboarding URL: the answer names the real ones, and the root URL to enter.
    named = "POST /bik/placeOrder and POST /bik/getOrder" in error["message"]
    assert named is bik_hint
    assert ("https://<this host>/bik" in error["message"]) is bik_hint


@pytest.mark.parametrize("path", ["/bik", "/placeOrder", "/bik/getorder"])
def test_a_bik_url_opened_in_a_browser_gets_the_hint_too(bik_app, path):
    """A brand checking a URL it typed opens it in a browser (Accept: text/html): it gets the
    same answer naming the real endpoints, not the site's HTML 404 page."""
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    response = bik_app.test_client().get(path, headers=browser)
    error = assert_error_shape(response, 404)
    assert "POST /bik/placeOrder and POST /bik/getOrder" in error["message"]


# --- odd but legal things a real client does ------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/bik/placeOrder/",
        "/bik/getOrder/",
        # A root URL entered with a trailing slash (https://shop/bik/): Bik adds /placeOrder.
        "/bik//placeOrder",
        "/bik//getOrder",
        "/bik/getOrder//",
    ],
)
def test_a_url_registered_with_a_trailing_slash_works(client, path):
    placed = client.post("/bik/placeOrder", json=sample_body()).get_json()["order"]
    body = sample_body() if "placeOrder" in path else {"orderId": placed["id"]}
    response = client.post(path, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["order"]["id"].startswith("ORD-")


def test_a_body_with_a_utf8_byte_order_mark_is_read(client):
    raw = b"\xef\xbb\xbf" + json.dumps(sample_body()).encode()
    response = client.post("/bik/placeOrder", data=raw, content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/bik/placeOrder", "/bik/getOrder"])
def test_options_is_answered_without_a_body_or_credentials(make_app, path):
    client = make_app(BIK_AUTH="bearer:some-long-token").test_client()
    response = client.open(path, method="OPTIONS")
    assert response.status_code == 200
    assert set(response.headers["Allow"].split(", ")) >= {"POST", "OPTIONS"}
    assert response.get_data() == b"" and "Content-Type" not in response.headers  # not HTML


def test_an_image_url_with_spaces_is_kept_encoded_not_refused(client):
    body = sample_body()
    body["order"]["items"][0]["image"] = "https://cdn.example.com/skin renew/crème.png?v=2"
    response = client.post("/bik/placeOrder", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    image = response.get_json()["order"]["items"][0]["image"]
    assert image == "https://cdn.example.com/skin%20renew/cr%C3%A8me.png?v=2"


@pytest.mark.parametrize("host", ["a_b", "shop.example.com:99999", ""])
def test_a_host_no_invoice_link_can_be_made_from_is_a_400_storing_nothing(make_app, host):
    """Without BIKSHOP_PUBLIC_URL the invoiceUrl is made from the request's Host; one that is
    no host name (Werkzeug reads it as "") gave ``http:///invoice/…``, a link to nowhere, with
    the order stored (security probe). It is a 400 naming the Host, before anything is
    stored; getOrder says the same rather than answer with that link."""
    from tests.bik import get, place, stored_state

    app = make_app()
    client = app.test_client()
    placed = place(client).get_json()["order"]
    before = stored_state(app)
    for answer in (
        place(client, sample_body(), headers={"Host": host}),
        get(client, placed["id"], headers={"Host": host}),
    ):
        error = assert_error_shape(answer, 400)
        assert error["code"] == "bad_host"
        assert "Send a Host header with this server's name" in error["message"]
    assert stored_state(app) == before
