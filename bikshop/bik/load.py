"""marshmallow request schemas with a compiled load, for the Bik hot path.

``Schema.load`` spends about half its time on bookkeeping a valid body never needs: an error
store, a closure per field, partial and unknown handling, hook dispatch. :class:`CompiledLoad`
gives a schema a ``load`` that, for a body that is valid, calls each field's own
``deserialize`` (its type check, conversion, ``required``, ``allow_none``, ``load_default`` and
validators) and then the schema's ``@validates_schema`` methods, and builds the same dict.

The moment anything is wrong, the whole body is loaded again by marshmallow's own
``Schema.load`` (nested schemas included), so every error message, and the order they come in,
is marshmallow's; tests/test_bik_load.py checks both paths against ``Schema.load`` on valid
and invalid bodies. A bad body costs at most one compiled attempt plus one ordinary load.

It compiles what Bik's request schemas use and refuses anything else at instantiation (other
hooks, ``many``, ``partial``, an ``unknown`` other than EXCLUDE, dotted keys), so a later
schema change cannot silently diverge from marshmallow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields
from marshmallow.utils import missing

# None: no load under way; "compiled": a compiled load is (nested loads take part in it);
# "marshmallow": marshmallow's own load is redoing a body the compiled one refused.
_MODE: ContextVar[str | None] = ContextVar("bikshop_load_mode", default=None)


class _Refused(Exception):  # noqa: N818 (a signal, not an error anyone sees)
    """A nested compiled load found a problem: the outermost load starts over with marshmallow.
    Not a ValidationError, so fields and lists in between let it through untouched."""


class CompiledLoad(Schema):
    """A Schema whose ``load()`` runs compiled when called plainly (see the module)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._compiled = compile_loader(self)

    def load(self, data, *, many=None, partial=None, unknown=None):
        mode = _MODE.get()
        plain = many is None and partial is None and unknown in (None, self.unknown)
        if mode == "marshmallow" or not plain:
            return super().load(data, many=many, partial=partial, unknown=unknown)
        if mode == "compiled":  # nested in a compiled load: its problem is the outermost's
            try:
                return self._compiled(data)
            except ValidationError as error:
                raise _Refused from error
        started = _MODE.set("compiled")
        try:
            return self._compiled(data)
        except (ValidationError, _Refused):
            pass  # the body has a problem: marshmallow's own load says which, in its words
        finally:
            _MODE.reset(started)
        return marshmallow_load(self, data)


def marshmallow_load(schema: Schema, data) -> Any:
    """``schema.load(data)`` by marshmallow alone, nested schemas included."""
    started = _MODE.set("marshmallow")
    try:
        return Schema.load(schema, data)
    finally:
        _MODE.reset(started)


Loader = Callable[[Any], dict]
Deserializer = Callable[[Any, str, Mapping], Any]


class NullMeansAbsent:
    """A field mixin: with ``null_means_absent`` set, a JSON null loads as if the key were left
    out (the field's ``load_default``), not as None. Compiled loads know this override."""

    null_means_absent = False

    def deserialize(self, value, attr=None, data=None, **kwargs):
        if value is None and self.null_means_absent:
            value = missing
        return super().deserialize(value, attr, data, **kwargs)


def compile_deserialize(field: fields.Field) -> Deserializer:
    """``field.deserialize`` for a value that loads without error, minus what marshmallow 4
    redoes per call for nothing (``And(*validators)`` built anew, empty pre- and post-load
    loops): the same checks in the same order (required, null, ``_deserialize``, validators).
    A problem raises a bare ValidationError; the outer load then asks marshmallow for its
    message. Fields that override any of those steps keep their own ``deserialize``."""
    kind = type(field)
    base = fields.Field
    if (
        kind.deserialize not in (base.deserialize, NullMeansAbsent.deserialize)
        or kind._validate is not base._validate
        or kind._validate_missing is not base._validate_missing
        or field.pre_load
        or field.post_load
    ):
        return field.deserialize
    inner = field._deserialize
    validators = tuple(field.validators)
    required, allow_none, default = field.required, field.allow_none, field.load_default
    null_means_absent = getattr(field, "null_means_absent", False)

    def deserialize(value, key: str, data: Mapping):
        if value is None and null_means_absent:
            value = missing
        if value is missing:
            if required:
                raise ValidationError("required")
            return default() if callable(default) else default
        if value is None:
            if allow_none:
                return None
            raise ValidationError("null")
        output = inner(value, key, data)
        for validate in validators:
            validate(output)
        return output

    return deserialize


def compile_loader(schema: Schema) -> Loader:
    """A function equivalent to ``schema.load(data)`` for data that loads without error; on
    any problem it raises (a ValidationError that is not marshmallow's full report)."""
    name = type(schema).__name__
    hooks = {kind: found for kind, found in schema._hooks.items() if found}
    if set(hooks) - {"validates_schema"}:
        raise TypeError(f"{name}: only @validates_schema hooks are compiled (has {set(hooks)})")
    if schema.many or schema.partial or schema.unknown != EXCLUDE:
        raise TypeError(f"{name}: many, partial and an unknown other than EXCLUDE are not compiled")
    steps = []
    for attr_name, field in schema.load_fields.items():
        key = field.data_key or attr_name
        attribute = field.attribute or attr_name
        if "." in key or "." in attribute:
            raise TypeError(f"{name}.{attr_name}: dotted keys are not compiled")
        steps.append((key, attribute, compile_deserialize(field)))
    validators = []
    for method, on_collection, options in hooks.get("validates_schema", ()):
        if on_collection or options.get("pass_original"):
            raise TypeError(f"{name}.{method}: pass_collection/pass_original are not compiled")
        validators.append(getattr(schema, method))

    def load(data) -> dict:
        if not isinstance(data, Mapping):
            raise ValidationError("not an object")
        out = {}
        for key, attribute, deserialize in steps:
            value = deserialize(data.get(key, missing), key, data)
            if value is not missing:
                out[attribute] = value
        for validate in validators:
            validate(out, partial=None, many=False, unknown=EXCLUDE)
        return out

    return load
