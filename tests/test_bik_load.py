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


def _load_fields(schema_class, seen=None):
    """Every load field of ``schema_class`` and of the schemas nested in it."""
    seen = set() if seen is None else seen
    if schema_class in seen:
        return
    seen.add(schema_class)
    for name, field in schema_class().load_fields.items():
        yield f"{schema_class.__name__}.{name}", field
        inner = getattr(field, "inner", field)
        if isinstance(inner, fields.Nested):
            yield from _load_fields(type(inner.schema), seen)


_ODD_VALUES = [None, "", " x ", "x" * 40, 0, 1, -1, 2.5, True, [], ["a"], {}, {"a": 1}]


@pytest.mark.parametrize(
    ("name", "field"), list(_load_fields(PlaceOrderRequest)) + list(_load_fields(GetOrderRequest))
)
def test_each_fields_compiled_deserialize_matches_its_own(app_context, name, field):
    """Per field, for absent, null and values of every JSON type: the same value, or a
    refusal by both (the compiled one need not say why: marshmallow then loads the body)."""
    from marshmallow.utils import missing

    from bikshop.bik.load import compile_deserialize

    fast = compile_deserialize(field)
    for value in [missing, *_ODD_VALUES]:
        own, ours = outcome(lambda f, v: f.deserialize(v, "k", {}), field, value), None
        try:
            ours = "loaded", fast(value, "k", {})
        except (ValidationError, TypeError, ValueError):
            ours = "refused", None
        if own[0] == "refused":
            assert ours[0] == "refused", f"{name}: {value!r} loaded as {ours[1]!r}"
        else:
            assert ours == own, f"{name}: {value!r}"


def test_fields_with_their_own_steps_keep_their_own_deserialize():
    from bikshop.bik.load import compile_deserialize

    class Shouting(fields.String):
        def _validate(self, value):
            if value != value.upper():
                raise ValidationError("shout")

    for field in (
        fields.String(pre_load=str.strip),
        fields.String(post_load=str.upper),
        Shouting(),
        fields.Constant(1),
    ):
        assert compile_deserialize(field) == field.deserialize
