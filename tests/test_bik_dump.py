"""The Bik answers come from a compiled BikOrderOut over plain snapshots (bikshop/bik/dump.py,
services/orders.py); they must be exactly what marshmallow's own dump of the stored model gives.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import Schema, fields, post_dump

from bikshop.bik.dump import compile_dumper
from bikshop.bik.schemas import BikOrderOut, OrderEnvelope
from bikshop.jsonio import loads
from bikshop.services import orders
from tests.bik import bik_app_fixture  # noqa: F401 (provides bik_app)
from tests.test_bik_fuzz import fuzz_settings, to_json, valid_place_order

EXAMPLES = 60


def test_both_answers_equal_marshmallow_dumping_the_stored_model(bik_app):
    client = bik_app.test_client()
    headers = {"Content-Type": "application/json"}

    @fuzz_settings(EXAMPLES)
    @given(valid_place_order(), st.sampled_from(["ORDERED", "CANCELLED"]))
    def check(body, status):
        placed = client.post("/bik/placeOrder", data=to_json(body), headers=headers)
        assert placed.status_code == 200, placed.get_data(as_text=True)
        order_id = placed.get_json()["order"]["id"]
        with bik_app.test_request_context(base_url="http://localhost"):
            model = orders.find_order(order_id)
            expected = OrderEnvelope().dump({"order": model})
            if status == "CANCELLED":  # a later state, changed through the ORM
                orders.change_status(model, status, actor="test")
                expected = OrderEnvelope().dump({"order": orders.find_order(order_id)})
        fetched = client.post("/bik/getOrder", json={"orderId": order_id}, headers=headers)
        # Compared as parsed JSON with Decimal numbers: types and every digit count.
        assert loads(fetched.get_data()) == loads(bik_app.json.dumps(expected))
        if status == "ORDERED":
            assert loads(placed.get_data()) == loads(fetched.get_data())

    check()


class _Inner(Schema):
    a = fields.String()
    b = fields.String(dump_default="none", data_key="B")


class _Outer(Schema):
    x = fields.Integer(attribute="ex")
    inner = fields.Nested(_Inner, allow_none=True)
    many = fields.List(fields.Nested(_Inner))
    when = fields.DateTime()


class _Thing:
    def __init__(self, **values):
        self.__dict__.update(values)


@pytest.mark.parametrize(
    "obj",
    [
        {"ex": 3, "inner": {"a": "1"}, "many": [{"a": "x", "b": "y"}, {}], "when": None},
        {"ex": "4", "inner": None, "many": None},
        _Thing(ex=5, inner=_Thing(a=None), many=[_Thing(b=2)]),
        {},
    ],
)
def test_a_compiled_schema_dumps_what_schema_dump_does(obj):
    assert compile_dumper(_Outer())(obj) == _Outer().dump(obj)


def test_what_cannot_be_compiled_is_refused_at_import():
    class Hooked(Schema):
        a = fields.String()

        @post_dump
        def change(self, data, **kwargs):
            return data

    class Dotted(Schema):
        a = fields.String(attribute="b.c")

    class Listed(Schema):
        a = fields.List(fields.String())

    for schema in (Hooked(), Dotted(), Listed(), BikOrderOut(only=("id",))):
        with pytest.raises(TypeError):
            compile_dumper(schema)
