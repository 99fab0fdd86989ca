"""marshmallow response schemas compiled into plain functions, for the Bik hot path.

``Schema.dump`` spends most of its time on per-field bookkeeping (dotted-path lookups, hooks,
error collection) that Bik's answer never needs. :func:`compile_dumper` walks a schema once and
returns a function that fetches each attribute and calls that field's own ``_serialize``, so
the schema stays the one definition of the answer (and of the OpenAPI document) and the output
is the same, which ``tests/test_bik_dump.py`` checks against ``Schema.dump`` itself.

It compiles what Bik's answer schemas use (plain fields, ``Nested``, ``List(Nested)``) and
refuses anything else (hooks, ``only``/``exclude``, dotted attributes) at import time, so a
later schema change cannot silently diverge from marshmallow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import Schema, fields
from marshmallow.utils import missing

Dumper = Callable[[Any], dict]


def compile_dumper(schema: Schema) -> Dumper:
    """A function equivalent to ``schema.dump(obj)`` for one object (dict or attributes)."""
    if any(schema._hooks.values()):
        raise TypeError(f"{type(schema).__name__}: hooks are not compiled; use Schema.dump")
    if schema.only or schema.exclude or schema.many:
        raise TypeError(f"{type(schema).__name__}: only/exclude/many are not compiled")
    steps = [_step(name, field) for name, field in schema.dump_fields.items()]

    def dump(obj) -> dict:
        out = {}
        mapping = isinstance(obj, dict)
        for key, attr, default, convert in steps:
            value = obj.get(attr, missing) if mapping else getattr(obj, attr, missing)
            if value is missing:
                if default is missing:
                    continue
                value = default
            out[key] = convert(value, attr, obj)
        return out

    return dump


def _step(name: str, field: fields.Field) -> tuple[str, str, Any, Callable]:
    attr = field.attribute or name
    if "." in attr:
        raise TypeError(f"{name}: dotted attributes are not compiled")
    default = field.dump_default
    if callable(default):
        raise TypeError(f"{name}: callable dump_default is not compiled")
    return field.data_key or name, attr, default, _converter(field)


def _converter(field: fields.Field) -> Callable:
    if isinstance(field, fields.Nested):
        inner = compile_dumper(_nested_schema(field))
        return lambda value, attr, obj: None if value is None else inner(value)
    if isinstance(field, fields.List):
        if not isinstance(field.inner, fields.Nested):
            raise TypeError(f"{field.name}: only List(Nested(...)) is compiled")
        each = compile_dumper(_nested_schema(field.inner))
        return lambda value, attr, obj: None if value is None else [each(v) for v in value]
    if type(field) is fields.String:  # its _serialize returns a str as it is
        serialize = field._serialize
        return lambda value, attr, obj: value if type(value) is str else serialize(value, attr, obj)
    return field._serialize


def _nested_schema(field: fields.Nested) -> Schema:
    if field.many or field.only or field.exclude:
        raise TypeError(f"{field.name}: many/only/exclude on Nested are not compiled")
    return field.schema
