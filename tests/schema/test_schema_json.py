"""JSON Schema stations: accepted inputs, wire bytes, error texts, draft handling, parity with
memphis-py's ``jsonschema.validate``."""

from __future__ import annotations

import datetime
import json
import math
from collections import OrderedDict
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schemaverse_helpers import memphis_py_accepts, memphis_py_station, schema_update
from support import examples

from memphis_fast.exceptions import MemphisError, MemphisSchemaError
from memphis_fast.schemaverse import BrokenSchema, Schema, compile_schema

ORDER = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string", "maxLength": 10},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["id"],
}

PREFIX_ITEMS = {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False}


def json_schema(doc: Any, **kw: Any) -> Schema:
    schema = compile_schema(schema_update("json", json.dumps(doc), **kw))
    assert schema is not None and schema.type == "json" and schema.compile_error is None
    return schema


def reject(schema: Schema, message: Any) -> MemphisSchemaError:
    with pytest.raises(MemphisSchemaError) as info:
        schema.encode(message)
    assert isinstance(info.value, MemphisError)
    return info.value


def test_dict_is_sent_as_orjson() -> None:
    msg = {"id": 1, "name": "é", "tags": ["a"]}
    assert json_schema(ORDER).encode(msg) == orjson.dumps(msg)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_bytes_like_are_sent_unchanged(wrap: Any) -> None:
    raw = b'{ "id" : 7 }'
    out = json_schema(ORDER).encode(wrap(raw))
    assert type(out) is bytes and out == raw


def test_bytes_are_not_copied() -> None:
    raw = b'{"id": 7}'
    assert json_schema(ORDER).encode(raw) is raw


def test_str_is_json_text() -> None:
    assert json_schema(ORDER).encode('{"id": 3}') == b'{"id": 3}'
    err = reject(json_schema(ORDER), "hello")
    assert err.message.startswith("Schema validation has failed: Expecting Json format: ")


def test_list_and_subclasses() -> None:
    schema = json_schema({"type": "array", "items": {"type": "integer"}})
    assert schema.encode([1, 2]) == b"[1,2]"
    assert json_schema(ORDER).encode(OrderedDict(id=1)) == b'{"id":1}'
    reject(schema, [1, "x"])


def test_required_error_text() -> None:
    err = reject(json_schema(ORDER), {"name": "x"})
    assert err.message == 'Schema validation has failed: "id" is a required property'
    assert str(err) == 'memphis: Schema validation has failed: "id" is a required property'
    assert err.reason == '"id" is a required property'  # type: ignore[attr-defined]
    assert err.payload == b'{"name":"x"}'  # type: ignore[attr-defined]


def test_nested_error_names_the_location() -> None:
    err = reject(json_schema(ORDER), b'{"id": 1, "tags": ["a", 5]}')
    assert err.message == 'Schema validation has failed: 5 is not of type "string" (at /tags/1)'
    assert err.payload == b'{"id": 1, "tags": ["a", 5]}'  # type: ignore[attr-defined]


def test_invalid_json_text_matches_memphis_py() -> None:
    station = memphis_py_station(schema_update("json", json.dumps(ORDER)))
    from memphis.exceptions import MemphisSchemaError as PyError

    for raw in [b"not json", b'{"id": 1', b"", b"\xff\xfe"]:
        with pytest.raises(PyError) as theirs:
            station.validate_json_schema(bytearray(raw))
        ours = reject(json_schema(ORDER), raw)
        assert ours.message == theirs.value.message


@pytest.mark.parametrize("message", [42, None, 1.5, {1, 2}, object()])
def test_unsupported_types(message: Any) -> None:
    assert (
        reject(json_schema(ORDER), message).message
        == "Schema validation has failed: Unsupported message type"
    )


def test_unserializable_dict() -> None:
    err = reject(json_schema({}), {"x": {1, 2}})
    assert err.message.startswith("Schema validation has failed: ")


# --- drafts ------------------------------------------------------------------------------------


def py_valid(schema: Any, instance: Any) -> bool:
    try:
        jsonschema.validate(instance, schema)
    except jsonschema.ValidationError:
        return False
    return True


PREFIX_CASES = [[1, "a"], [1], [], [1, "a", 3], ["a", 1], [1, 2], [True, "a"], [1.0, "x"]]


@pytest.mark.parametrize("instance", PREFIX_CASES)
def test_prefix_items_2020_12_by_default_like_memphis_py(instance: Any) -> None:
    """No ``$schema``: Draft 2020-12, where ``prefixItems`` applies and ``items: false`` forbids
    extra items -- exactly what memphis-py's ``jsonschema.validate`` decides."""
    expected = py_valid(PREFIX_ITEMS, instance)
    schema = json_schema(PREFIX_ITEMS)
    try:
        schema.encode(instance)
        ours = True
    except MemphisSchemaError:
        ours = False
    assert ours == expected
    station = memphis_py_station(schema_update("json", json.dumps(PREFIX_ITEMS)))
    assert memphis_py_accepts(station, "json", bytearray(json.dumps(instance).encode())) == expected
    assert expected == (json.dumps(instance) in {'[1, "a"]', "[1]", "[]", '[1.0, "x"]'})


@pytest.mark.parametrize("instance", PREFIX_CASES)
def test_draft_07_is_honoured(instance: Any) -> None:
    """``$schema`` draft-07: ``prefixItems`` is an unknown keyword and ``items: false`` forbids
    every item, so only the empty array is valid; memphis-py agrees."""
    doc = {"$schema": "http://json-schema.org/draft-07/schema#", **PREFIX_ITEMS}
    expected = py_valid(doc, instance)
    assert expected == (instance == [])
    try:
        json_schema(doc).encode(instance)
        ours = True
    except MemphisSchemaError:
        ours = False
    assert ours == expected


def test_draft_detection() -> None:
    from memphis_fast.schemaverse._json import compile_json_validator

    assert type(compile_json_validator(json.dumps(ORDER))).__name__ == "Draft202012Validator"
    for uri, name in [
        ("http://json-schema.org/draft-04/schema#", "Draft4Validator"),
        ("http://json-schema.org/draft-06/schema#", "Draft6Validator"),
        ("http://json-schema.org/draft-07/schema#", "Draft7Validator"),
        ("https://json-schema.org/draft/2019-09/schema", "Draft201909Validator"),
        ("https://json-schema.org/draft/2020-12/schema", "Draft202012Validator"),
    ]:
        assert type(compile_json_validator(json.dumps({"$schema": uri}))).__name__ == name


def test_draft_04_exclusive_maximum_boolean() -> None:
    doc = {"$schema": "http://json-schema.org/draft-04/schema#", "maximum": 5, "exclusiveMaximum": True}
    schema = json_schema(doc)
    schema.encode(b"4")
    reject(schema, b"5")
    assert not py_valid(doc, 5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_unknown_meta_schema_falls_back_to_2020_12() -> None:
    doc = {"$schema": "https://example.com/my-meta", **PREFIX_ITEMS}
    schema = json_schema(doc)
    for instance in PREFIX_CASES:
        try:
            schema.encode(instance)
            ours = True
        except MemphisSchemaError:
            ours = False
        assert ours == py_valid(doc, instance), instance


def test_format_is_an_annotation_like_memphis_py() -> None:
    for draft in [None, "http://json-schema.org/draft-07/schema#"]:
        doc: dict[str, Any] = {"type": "string", "format": "email"}
        if draft:
            doc["$schema"] = draft
        assert py_valid(doc, "not an email")
        json_schema(doc).encode('"not an email"')


def test_remote_ref_is_never_fetched() -> None:
    schema = compile_schema(schema_update("json", json.dumps({"$ref": "https://example.invalid/s.json"})))
    assert isinstance(schema, BrokenSchema)
    assert "invalid JSON schema" in (schema.compile_error or "")


# --- values where the Python object and its JSON text differ ---------------------------------


def test_nan_is_validated_as_the_null_it_is_sent_as() -> None:
    doc = {"type": "object", "properties": {"n": {"not": {"type": "null"}}}}
    err = reject(json_schema(doc), {"n": math.nan})
    assert err.payload == b'{"n":null}'  # type: ignore[attr-defined]
    assert (
        json_schema({"properties": {"n": {"type": ["number", "null"]}}}).encode({"n": math.inf})
        == b'{"n":null}'
    )


def test_values_orjson_serializes_are_validated_as_sent() -> None:
    when = datetime.datetime(2024, 5, 1, 12, 0, 0)
    doc = {"properties": {"at": {"type": "string"}}}
    assert json_schema(doc).encode({"at": when}) == b'{"at":"2024-05-01T12:00:00"}'
    reject(json_schema({"properties": {"at": {"type": "integer"}}}), {"at": when})


def test_stdlib_fallbacks_accept_what_memphis_py_accepted() -> None:
    # int keys and 65-bit integers: orjson refuses them, json.dumps (memphis-py) did not.
    assert json_schema({"type": "object"}).encode({1: "a"}) == b'{"1":"a"}'
    assert json_schema({"type": "object"}).encode({"n": 2**70}) == b'{"n":1180591620717411303424}'
    # NaN literal and UTF-16 text are valid input for memphis-py's json.loads.
    assert json_schema({}).encode(b'{"n": NaN}') == b'{"n": NaN}'
    assert json_schema({"type": "object"}).encode('{"a": 1}'.encode("utf-16")) == '{"a": 1}'.encode("utf-16")


# --- decode ------------------------------------------------------------------------------------


def test_decode_returns_the_value() -> None:
    schema = json_schema(ORDER)
    assert schema.decode(b'{"id": 5, "tags": []}') == {"id": 5, "tags": []}
    assert schema.decode(bytearray(b'{"id": 5}')) == {"id": 5}
    assert schema.decode(memoryview(b'{"id": 5}')) == {"id": 5}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"name": "x"}', '"id" is a required property'),
        (b"nope", "Expecting Json format: Expecting value: line 1 column 1 (char 0)"),
    ],
)
def test_decode_raises_instead_of_returning_none(data: bytes, reason: str) -> None:
    with pytest.raises(MemphisSchemaError) as info:
        json_schema(ORDER).decode(data)
    assert info.value.message == (
        "Deserialization has been failed since the message format does not align with the "
        "currently attached schema: " + reason
    )


def test_broken_schema_rejects_everything() -> None:
    schema = compile_schema(schema_update("json", "{not json"))
    assert isinstance(schema, BrokenSchema) and schema.type == "json"
    err = reject(schema, {"id": 1})
    assert err.message.startswith("Schema validation has failed: invalid JSON schema: ")
    with pytest.raises(MemphisSchemaError):
        schema.decode(b"{}")
    assert isinstance(compile_schema(schema_update("json", '{"type": 12}')), BrokenSchema)


# --- differential against memphis-py ---------------------------------------------------------

SCHEMAS = [
    ORDER,
    PREFIX_ITEMS,
    {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}, "additionalProperties": False},
    {
        "type": "object",
        "unevaluatedProperties": False,
        "properties": {"a": {}},
        "allOf": [{"properties": {"b": {}}}],
    },
    {"type": "object", "dependentRequired": {"a": ["b"]}},
    {
        "$defs": {"pos": {"type": "number", "exclusiveMinimum": 0}},
        "type": "array",
        "items": {"$ref": "#/$defs/pos"},
    },
    {"anyOf": [{"type": "string", "pattern": "^[a-c]+$"}, {"type": "null"}, {"const": 3}]},
    {"oneOf": [{"type": "integer"}, {"multipleOf": 2}]},
    {"type": "object", "propertyNames": {"maxLength": 2}, "minProperties": 1},
    {"type": "array", "contains": {"type": "string"}, "minContains": 2, "uniqueItems": True},
    {"enum": [1, "1", None, [1], {"a": 1}]},
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet="abcdé1", max_size=4),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "c", "id", "name", "tags", "xyz"]), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=examples(300), deadline=None)
@given(index=st.integers(min_value=0, max_value=len(SCHEMAS) - 1), value=json_values)
def test_same_decisions_as_memphis_py(index: int, value: Any) -> None:
    doc = SCHEMAS[index]
    expected = py_valid(doc, value)
    schema = json_schema(doc)
    wire = json.dumps(value).encode()
    for message in (wire, value) if isinstance(value, (dict, list)) else (wire,):
        try:
            schema.encode(message)
            ours = True
        except MemphisSchemaError:
            ours = False
        assert ours == expected, (doc, message)
    station = memphis_py_station(schema_update("json", json.dumps(doc)))
    assert memphis_py_accepts(station, "json", bytearray(wire)) == expected
