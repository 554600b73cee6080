"""Avro stations: JSON on the wire, fastavro's decisions and texts, and the generated acceptor never
saying yes where fastavro says no."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schemaverse_helpers import memphis_py_station, schema_update
from support import examples

from memphis_fast.exceptions import MemphisSchemaError
from memphis_fast.schemaverse import BrokenSchema, Schema, compile_schema
from memphis_fast.schemaverse._avro import AvroSchema, build_acceptor

ORDER = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "int"},
        {"name": "name", "type": "string"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "price", "type": "double"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}
GOOD = {"id": 1, "name": "widget", "tags": ["a"], "price": 2.5, "note": None}

RICH = {
    "type": "record",
    "name": "Rich",
    "fields": [
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "b", "type": "boolean"},
        {"name": "s", "type": {"type": "string"}},
        {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
        {"name": "e2", "type": ["null", "Color"], "default": None},
        {"name": "m", "type": {"type": "map", "values": ["int", "string"]}, "default": {}},
        {
            "name": "a",
            "type": {
                "type": "array",
                "items": {"type": "record", "name": "Pt", "fields": [{"name": "x", "type": "int"}]},
            },
        },
        {"name": "p", "type": ["null", "Pt"], "default": None},
        {"name": "fx", "type": ["null", {"type": "fixed", "name": "Two", "size": 2}], "default": None},
        {"name": "by", "type": ["null", "bytes"], "default": None},
        {"name": "d", "type": "string", "default": "dflt"},
    ],
}
LIST_NODE = {
    "type": "record",
    "name": "Node",
    "fields": [{"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"], "default": None}],
}
LOGICAL = {
    "type": "record",
    "name": "Ev",
    "fields": [{"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
}


def avro(doc: Any, **kw: Any) -> Schema:
    schema = compile_schema(schema_update("avro", json.dumps(doc), **kw))
    assert isinstance(schema, AvroSchema)
    return schema


def fastavro_valid(doc: Any, value: Any) -> bool:
    return bool(fastavro.validate(value, fastavro.parse_schema(doc), raise_errors=False))


def test_dict_is_sent_as_json() -> None:
    assert avro(ORDER).encode(GOOD) == b'{"id":1,"name":"widget","tags":["a"],"price":2.5,"note":null}'
    assert avro(ORDER).encode(OrderedDict(GOOD)) == avro(ORDER).encode(GOOD)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, lambda b: b.decode()])
def test_json_text_is_sent_unchanged(wrap: Any) -> None:
    raw = json.dumps(GOOD).encode()
    out = avro(ORDER).encode(wrap(raw))
    assert type(out) is bytes and out == raw


def test_error_text_is_fastavros_and_memphis_pys() -> None:
    bad = {**GOOD, "id": "x"}
    with pytest.raises(MemphisSchemaError) as info:
        avro(ORDER).encode(bad)
    from memphis.exceptions import MemphisSchemaError as PyError

    station = memphis_py_station(schema_update("avro", json.dumps(ORDER)))
    with pytest.raises(PyError) as theirs:
        station.validate_avro_schema(bad)
    assert info.value.message == theirs.value.message
    assert info.value.message == (
        "Schema validation has failed: [\n  \"shop.Order.id is <x> of type <class 'str'> expected int\"\n]"
    )
    assert info.value.payload == json.dumps(bad, separators=(",", ":")).encode()  # type: ignore[attr-defined]


def test_invalid_json_is_a_schema_error() -> None:
    # memphis-py raised a plain Exception here, reported as MemphisError, not MemphisSchemaError.
    with pytest.raises(MemphisSchemaError) as info:
        avro(ORDER).encode(b"{oops")
    assert info.value.message == (
        "Schema validation has failed: Expecting Avro format: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    )


@pytest.mark.parametrize("message", [3, None, 2.5, object()])
def test_unsupported(message: Any) -> None:
    with pytest.raises(MemphisSchemaError) as info:
        avro(ORDER).encode(message)
    assert info.value.message == "Schema validation has failed: Unsupported message type"


def test_decode() -> None:
    assert avro(ORDER).decode(json.dumps(GOOD).encode()) == GOOD
    with pytest.raises(MemphisSchemaError) as info:
        avro(ORDER).decode(b'{"id": 1}')
    assert info.value.message.startswith(
        "Deserialization has been failed since the message format does not align with the "
        "currently attached schema: ["
    )


def test_recursive_schema() -> None:
    schema = avro(LIST_NODE)
    assert schema._accept is not None  # type: ignore[attr-defined]
    schema.encode({"v": 1, "next": {"v": 2, "next": {"v": 3}}})
    with pytest.raises(MemphisSchemaError):
        schema.encode({"v": 1, "next": {"v": "x"}})


def test_deep_recursion_falls_back_without_crashing() -> None:
    value: dict[str, Any] = {"v": 0, "next": None}
    for i in range(3000):
        value = {"v": i, "next": value}
    schema = avro(LIST_NODE)
    try:
        schema.encode(value)
    except MemphisSchemaError:
        pass  # fastavro itself may hit the recursion limit: a schema error, not a crash


def test_logical_types_use_fastavro_only() -> None:
    schema = avro(LOGICAL)
    assert schema._accept is None  # type: ignore[attr-defined]
    schema.encode({"at": 1700000000000})
    with pytest.raises(MemphisSchemaError):
        schema.encode({"at": "yesterday"})


def test_defaults_and_missing_fields_like_fastavro() -> None:
    schema = avro(RICH)
    base = {"i": 1, "l": 2**40, "f": 1, "b": True, "s": "x", "e": "RED", "a": [{"x": 1}]}
    schema.encode(base)
    assert fastavro_valid(RICH, base)
    for field in ["i", "a", "e"]:
        missing = {k: v for k, v in base.items() if k != field}
        assert not fastavro_valid(RICH, missing)
        with pytest.raises(MemphisSchemaError):
            schema.encode(missing)


def test_broken_schemas() -> None:
    assert isinstance(compile_schema(schema_update("avro", "{nope")), BrokenSchema)
    broken = compile_schema(
        schema_update(
            "avro", json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": "Nope"}]})
        )
    )
    assert isinstance(broken, BrokenSchema)
    assert (broken.compile_error or "").startswith("invalid Avro schema: ")


# --- the acceptor is conservative --------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats()
    | st.sampled_from(["RED", "GREEN", "BLUE", "", "x"])
    | st.binary(max_size=3)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(
            st.sampled_from(
                [
                    "i",
                    "l",
                    "f",
                    "b",
                    "s",
                    "e",
                    "e2",
                    "m",
                    "a",
                    "p",
                    "fx",
                    "by",
                    "d",
                    "x",
                    "v",
                    "next",
                    "-type",
                ]
            ),
            children,
            max_size=8,
        )
    ),
    max_leaves=16,
)


def _rich_like() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "i": st.integers(min_value=-(2**31) - 1, max_value=2**31),
            "l": st.integers(min_value=-(2**63) - 1, max_value=2**63),
            "f": st.floats() | st.integers(),
            "b": st.booleans() | st.integers(0, 1),
            "s": st.text(max_size=2),
            "e": st.sampled_from(["RED", "GREEN", "BLUE"]),
            "a": st.lists(st.fixed_dictionaries({"x": st.integers(-3, 3) | st.text(max_size=1)}), max_size=2),
        },
        optional={
            "e2": st.none() | st.sampled_from(["RED", "BLUE"]),
            "m": st.dictionaries(
                st.text(max_size=2), st.integers() | st.text(max_size=1) | st.none(), max_size=2
            ),
            "p": st.none() | st.fixed_dictionaries({"x": st.integers()}),
            "fx": st.none() | st.binary(min_size=1, max_size=3),
            "by": st.none() | st.binary(max_size=2) | st.text(max_size=1),
            "d": st.text(max_size=1) | st.none(),
        },
    )


@settings(max_examples=examples(400), deadline=None)
@given(doc=st.sampled_from([ORDER, RICH, LIST_NODE]), value=values | _rich_like())
def test_acceptor_never_accepts_what_fastavro_rejects(doc: Any, value: Any) -> None:
    named: dict[str, Any] = {}
    parsed = fastavro.parse_schema(doc, named)
    accept = build_acceptor(parsed, named)
    assert accept is not None
    expected = bool(fastavro.validate(value, parsed, raise_errors=False))
    if accept(value):
        assert expected
    # and the schema as a whole decides exactly like fastavro
    assert (avro(doc)._check(value) is None) == expected  # type: ignore[attr-defined]


@settings(max_examples=examples(200), deadline=None)
@given(value=_rich_like())
def test_json_round_trip_decisions_match_memphis_py(value: dict[str, Any]) -> None:
    station = memphis_py_station(schema_update("avro", json.dumps(RICH)))
    try:
        wire = json.dumps(value).encode()
    except (TypeError, ValueError):
        return  # bytes values: not JSON, neither client can send them
    from memphis.exceptions import MemphisSchemaError as PyError

    try:
        station.validate_avro_schema(bytearray(wire))
        theirs = True
    except PyError:
        theirs = False
    try:
        avro(RICH).encode(wire)
        ours = True
    except MemphisSchemaError:
        ours = False
    assert ours == theirs
