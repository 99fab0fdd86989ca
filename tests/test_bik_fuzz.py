"""Property-based fuzzing of both Bik endpoints: whatever arrives, never a 5xx, always a shape.

Three generators, over 1,000 requests per backend in all: near-valid placeOrder bodies (a valid,
fully priced order with a few random mutations), raw bytes and JSON-ish token soup, and getOrder
bodies. Runs are deterministic (``derandomize``) and keep no example database in the repo.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bikshop.jsonio import decimal_to_json
from tests.bik import (  # noqa: F401 (bik_app_fixture provides bik_app)
    assert_bik_order,
    assert_error_shape,
    bik_app_fixture,
    sample_body,
)

PLACE_EXAMPLES, RAW_EXAMPLES, GET_EXAMPLES = 400, 350, 300
_drafts = itertools.count(1)


def fuzz_settings(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


# --- strategies --------------------------------------------------------------------------------

printable = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30
).filter(str.strip)
any_text = st.text(max_size=40)  # control characters, surrogates, everything
money = st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False)
catalog_id = st.one_of(
    st.integers(min_value=0, max_value=2**70),
    st.text("abcdefXYZ0123456789-_", min_size=1, max_size=20),
)
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    any_text,
)
json_value = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def valid_place_order(draw) -> dict:
    """A fully priced placeOrder body whose totals add up, as Bik computes them."""
    items = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "productId": catalog_id,
                    "variantId": catalog_id,
                    "name": printable,
                    "quantity": st.integers(min_value=1, max_value=50),
                    "price": money,
                },
                optional={"variantName": st.one_of(st.none(), printable), "image": st.none()},
            ),
            min_size=1,
            max_size=4,
        )
    )
    sub_total = sum((item["price"] * item["quantity"] for item in items), Decimal(0))
    shipping = draw(money)
    discount = draw(st.decimals(min_value=0, max_value=sub_total + shipping, places=2))
    # Unique per example, so most bodies are new orders; replays and 409s come from mutations.
    draft = f"{next(_drafts)}_{draw(st.text('abcdefghijklmnopqrstuvwxyz0123456789_', max_size=8))}"
    order = {
        "id": draft,
        "name": "",
        "phoneNumber": f"+91{draw(st.integers(min_value=6_000_000_000, max_value=9_999_999_999))}",
        "items": items,
        "subTotal": sub_total,
        "shippingCharge": shipping,
        "discount": discount,
        "total": sub_total + shipping - discount,
        "currency": draw(st.sampled_from(["", "INR", "inr", "USD"])),
        "address": draw(
            st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {"firstName": printable, "city": printable, "zip": st.just("560102")},
                    optional={"state": st.one_of(st.none(), printable)},
                ),
            )
        ),
        "tags": draw(st.one_of(st.none(), printable, st.lists(printable, max_size=3))),
    }
    if draw(st.booleans()):
        order["email"] = draw(st.sampled_from(["Buyer@Example.com", "", None, "a.b@c.in"]))
    return {"draftOrderId": "nb_" + draft, "paymentPending": draw(st.booleans()), "order": order}


def paths_of(value, prefix=()):
    """Every (path) to a value inside ``value``, so a mutation can pick any of them."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths_of(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from paths_of(child, (*prefix, index))


def mutate(draw, body: dict) -> dict:
    """Apply one random change somewhere in ``body``: the near-valid inputs that find bugs."""
    path = draw(st.sampled_from([p for p in paths_of(body) if p]))
    *parents, last = path
    target = body
    for key in parents:
        target = target[key]
    kind = draw(st.sampled_from(["replace", "delete", "add", "nudge", "text"]))
    if kind == "delete":
        del target[last]
    elif kind == "add" and isinstance(target, dict):
        target[draw(any_text)] = draw(json_value)
    elif kind == "nudge" and isinstance(target[last], int | Decimal):
        target[last] = target[last] + draw(st.sampled_from([Decimal("0.01"), -1, 10**9]))
    elif kind == "text":
        target[last] = draw(any_text)
    else:
        target[last] = draw(json_value)
    return body


def to_json(body) -> bytes:
    def default(value):
        if isinstance(value, Decimal):
            return decimal_to_json(value)
        raise TypeError(type(value))

    return json.dumps(body, default=default).encode("utf-8", "surrogatepass")


def check(response, outcomes: Counter) -> dict | None:
    """No 5xx; every 2xx is a well-formed BikOrder, every 4xx the error shape."""
    outcomes[response.status_code] += 1
    assert response.status_code < 500, response.get_data(as_text=True)[:1000]
    if response.status_code == 200:
        envelope = json.loads(response.get_data(as_text=True))
        assert set(envelope) == {"order"}
        assert_bik_order(envelope["order"])
        return envelope["order"]
    error = assert_error_shape(response, response.status_code)
    assert 400 <= response.status_code < 500
    if response.status_code == 409:
        assert error["code"] == "draft_conflict"
    return None


# --- properties --------------------------------------------------------------------------------


def test_place_order_fuzz(bik_app):
    client = bik_app.test_client()
    outcomes: Counter = Counter()

    @fuzz_settings(PLACE_EXAMPLES)
    @given(st.data())
    def place(data):
        body = data.draw(valid_place_order())
        for _ in range(data.draw(st.integers(min_value=0, max_value=3))):
            body = mutate(data.draw, body)
        order = send(body)
        retry = data.draw(st.integers(min_value=0, max_value=9))
        if order is None or retry > 2:
            return
        # Bik's retry of the same draft: the same body is a replay, a changed one a 409.
        if retry == 0:
            assert send(body) == order
        elif retry == 1:
            body = json.loads(to_json(body), parse_float=Decimal)
            body["order"]["phoneNumber"] = "+911234567890"
            response = client.post(
                "/bik/placeOrder", data=to_json(body), headers={"Content-Type": "application/json"}
            )
            assert check(response, outcomes) is None and response.status_code == 409
        else:
            send(mutate(data.draw, body))

    def send(body):
        response = client.post(
            "/bik/placeOrder", data=to_json(body), headers={"Content-Type": "application/json"}
        )
        order = check(response, outcomes)
        if order is not None:
            assert order["partnersData"]["id"] == body["draftOrderId"].strip()
            sent = body["order"]
            for field in ("subTotal", "shippingCharge", "discount", "total"):
                # shippingCharge and discount may be absent or null: 0
                assert Decimal(str(order[field])) == Decimal(sent.get(field) or 0), field
            assert len(order["items"]) == len(sent["items"])
        return order

    place()
    assert sum(outcomes.values()) >= PLACE_EXAMPLES
    # Both kinds must be common, or the generator has drifted into testing nothing.
    assert outcomes[200] >= PLACE_EXAMPLES // 5 and outcomes[422] >= PLACE_EXAMPLES // 5, outcomes
    assert outcomes[409], outcomes


json_token = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        '"draftOrderId"',
        '"order"',
        '"items"',
        '"paymentPending"',
        '"orderId"',
        "null",
        "true",
        "1e999999999",
        "-0",
        "0.1",
        "NaN",
        '"\\u0000"',
        '"\\ud800"',
        '"x"',
        " ",
        "\n",
    ]
)


def test_raw_bytes_fuzz(bik_app):
    client = bik_app.test_client()
    outcomes: Counter = Counter()

    @fuzz_settings(RAW_EXAMPLES)
    @given(
        st.one_of(st.binary(max_size=200), st.lists(json_token, max_size=40).map("".join)),
        st.sampled_from(["/bik/placeOrder", "/bik/getOrder"]),
        st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain"]),
    )
    def send(raw, path, content_type):
        if isinstance(raw, str):
            raw = raw.encode()
        check(client.post(path, data=raw, headers={"Content-Type": content_type}), outcomes)

    send()
    assert sum(outcomes.values()) >= RAW_EXAMPLES


def test_get_order_fuzz(bik_app):
    client = bik_app.test_client()
    placed = client.post(
        "/bik/placeOrder",
        data=to_json(sample_body()),
        headers={"Content-Type": "application/json"},
    )
    known = placed.get_json()["order"]["id"]
    outcomes: Counter = Counter()

    @fuzz_settings(GET_EXAMPLES)
    @given(
        st.one_of(
            st.fixed_dictionaries({"orderId": json_value}),
            st.fixed_dictionaries({"orderId": st.sampled_from([known, f" {known} ", "ORD-0"])}),
            st.fixed_dictionaries({"orderId": any_text}),
            st.dictionaries(any_text, json_value, max_size=3),
        )
    )
    def get(body):
        response = client.post(
            "/bik/getOrder", data=to_json(body), headers={"Content-Type": "application/json"}
        )
        order = check(response, outcomes)
        if order is not None:
            assert order["id"] == known
        elif response.status_code == 404:
            assert response.get_json()["error"]["fields"][0]["field"] == "orderId"

    get()
    assert sum(outcomes.values()) >= GET_EXAMPLES
    assert outcomes[200] and outcomes[404] and outcomes[422], outcomes
