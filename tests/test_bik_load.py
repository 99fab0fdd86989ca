"""The compiled load of Bik's request schemas (bikshop/bik/load.py) against marshmallow's own:
the same data for every body that loads, the same errors for every body that does not, and
marshmallow's load run at most once for a bad body."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, post_load, validates

from bikshop.bik.load import CompiledLoad, marshmallow_load
from bikshop.bik.schemas import GetOrderRequest, PlaceOrderRequest
from bikshop.jsonio import loads
from tests.bik import sample_body
from tests.test_bik_bad_input import BAD_GET_ORDERS, BAD_PLACE_ORDERS, LEGAL_ORDERS, set_in
from tests.test_bik_fuzz import fuzz_settings, mutate, to_json, valid_place_order


@pytest.fixture(scope="module")
def app_context():
    from bikshop import create_app
    from tests.conftest import BASE_CONFIG

    app = create_app({**BASE_CONFIG, "DATABASE_URL": "sqlite://"})
    with app.app_context():
        yield


@pytest.fixture
def marshmallow_loads(monkeypatch):
    """Counts the loads marshmallow itself runs (any schema, nested ones included)."""
    calls = []
    original = Schema._do_load

    def counted(schema, *args, **kwargs):
        calls.append(type(schema).__name__)
        return original(schema, *args, **kwargs)

    monkeypatch.setattr(Schema, "_do_load", counted)
    return calls


def outcome(load, schema, body):
    try:
        return "loaded", load(schema, body)
    except ValidationError as error:
        return "refused", error.messages


def compiled(schema, body):
    return schema.load(body)


def assert_same(schema, body) -> str:
    expected = outcome(marshmallow_load, schema, body)
    assert outcome(compiled, schema, body) == expected
    return expected[0]


def parsed(raw: bytes):
    return loads(raw)


def test_a_valid_body_loads_compiled_to_marshmallows_result(app_context, marshmallow_loads):
    schema = PlaceOrderRequest()
    body = parsed(json.dumps(sample_body("load_1")).encode())
    assert schema.load(body) == marshmallow_load(schema, body)
    # The compiled load ran alone; marshmallow's ran once per schema in the body for the reference.
    assert marshmallow_loads == [
        "PlaceOrderRequest",
        "IncomingOrderSchema",
        *["ItemSchema"] * len(body["order"]["items"]),
        "AddressSchema",
    ]
    marshmallow_loads.clear()
    schema.load(body)
    assert marshmallow_loads == []


@pytest.mark.parametrize("legal", LEGAL_ORDERS, ids=lambda legal: legal.id)
def test_odd_but_legal_bodies_load_the_same(app_context, legal):
    body = sample_body("load_legal")
    for path, value in legal.change.items():
        set_in(body, path, value)
    assert assert_same(PlaceOrderRequest(), parsed(to_json(body))) == "loaded"


def _json_bodies(battery):
    for bad in battery:
        try:
            body = parsed(bad.body())
        except ValueError:
            continue  # not JSON: refused before any schema sees it
        yield pytest.param(body, id=bad.id)


@pytest.mark.parametrize("body", list(_json_bodies(BAD_PLACE_ORDERS)))
def test_bad_place_orders_get_marshmallows_own_errors(app_context, body):
    assert_same(PlaceOrderRequest(), body)


@pytest.mark.parametrize("body", list(_json_bodies(BAD_GET_ORDERS)))
def test_bad_get_orders_get_marshmallows_own_errors(app_context, body):
    assert_same(GetOrderRequest(), body)


@st.composite
def near_valid(draw):
    body = draw(valid_place_order())
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        body = mutate(draw, body)
    return body


@fuzz_settings(300)
@given(body=near_valid())
def test_generated_bodies_load_or_fail_the_same(app_context, body):
    assert_same(PlaceOrderRequest(), parsed(to_json(body)))


def test_a_bad_body_is_loaded_by_marshmallow_once(app_context, marshmallow_loads):
    """An error deep inside (the last item) does not make every level start over."""
    body = sample_body("load_bad")
    body["order"]["items"][-1]["quantity"] = 0
    body = parsed(json.dumps(body).encode())
    schema = PlaceOrderRequest()
    with pytest.raises(ValidationError) as raised:
        schema.load(body)
    assert "items" in raised.value.messages["order"]
    assert marshmallow_loads == [
        "PlaceOrderRequest",
        "IncomingOrderSchema",
        *["ItemSchema"] * len(body["order"]["items"]),
        "AddressSchema",
    ]


def test_loads_with_options_are_marshmallows(app_context, marshmallow_loads):
    body = {"orderId": "ORD-1", "extra": 1}
    assert GetOrderRequest().load(body, partial=True) == {"orderId": "ORD-1"}
    assert marshmallow_loads == ["GetOrderRequest"]
    with pytest.raises(ValidationError, match="Unknown field"):
        GetOrderRequest().load(body, unknown=RAISE)


class _Excluding(Schema):
    class Meta:
        unknown = EXCLUDE


class _WithPostLoad(CompiledLoad, _Excluding):
    a = fields.Integer()

    @post_load
    def _double(self, data, **kwargs):
        return data


class _WithFieldValidator(CompiledLoad, _Excluding):
    a = fields.Integer()

    @validates("a")
    def _check(self, value, **kwargs):
        pass


class _Raising(CompiledLoad):
    class Meta:
        unknown = RAISE

    a = fields.Integer()


class _Dotted(CompiledLoad, _Excluding):
    a = fields.Integer(data_key="x.y")


@pytest.mark.parametrize(
    ("schema_class", "reason"),
    [
        (_WithPostLoad, "only @validates_schema"),
        (_WithFieldValidator, "only @validates_schema"),
        (_Raising, "unknown"),
        (_Dotted, "dotted"),
    ],
)
def test_schemas_it_cannot_compile_are_refused_when_made(schema_class, reason):
    with pytest.raises(TypeError, match=reason):
        schema_class()
