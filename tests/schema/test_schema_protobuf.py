"""Protobuf stations, with descriptors built by the real protoc the way the broker builds them.

Regression tests for memphis-py's defects B4 (dict fields leak between messages), B5 (valid
binary rejected) and B19 (``GetPrototype`` gone in protobuf >= 6.30). The suite also runs under
the newest protobuf: ``scripts/test-protobuf7.sh``.
"""

from __future__ import annotations

import os
from typing import Any

import google.protobuf
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st
from schemaverse_helpers import (
    MEMPHIS_PY_PROTOBUF_WORKS,
    memphis_py_station,
    protobuf_update,
    protoc_descriptor,
    schema_update,
)
from support import examples

from memphis_fast.exceptions import MemphisSchemaError
from memphis_fast.schemaverse import BrokenSchema, compile_schema
from memphis_fast.schemaverse._protobuf import ProtobufSchema, build_message_class

ORDER_PROTO = """
syntax = "proto3";
package shop;

message Order {
  int32 a = 1;
  string b = 2;
  repeated int32 r = 3;
  double price = 4;
  Address addr = 5;
}

message Address { string city = 1; }
"""

RICH_PROTO = """
syntax = "proto3";
package rich.v1;

enum Color { RED = 0; GREEN = 1; BLUE = 2; }

message Rich {
  int32 i32 = 1;
  int64 i64 = 2;
  uint32 u32 = 3;
  uint64 u64 = 4;
  sint32 s32 = 5;
  fixed64 f64 = 6;
  double d = 7;
  float f = 8;
  bool flag = 9;
  string text = 10;
  bytes blob = 11;
  Color color = 12;
  repeated string names = 13;
  repeated Inner inners = 14;
  map<string, int32> counts = 15;
  map<string, Inner> by_name = 16;
  Inner inner = 17;
  optional int32 maybe = 18;
  oneof choice { string left = 19; int32 right = 20; }
  int32 camel_case_field = 21;
}

message Inner { int32 x = 1; repeated Color colors = 2; Rich back = 3; }
"""

NO_PACKAGE_PROTO = """
syntax = "proto3";
message Ping { string id = 1; }
message Pong { string id = 1; }
"""

WKT_PROTO = """
syntax = "proto3";
package ev;
import "google/protobuf/timestamp.proto";
message Event { string name = 1; google.protobuf.Timestamp at = 2; }
"""

PROTO2 = """
syntax = "proto2";
package legacy;
message Req { required int32 id = 1; optional string note = 2; }
"""


def proto(text: str = ORDER_PROTO, **kw: Any) -> ProtobufSchema:
    schema = compile_schema(protobuf_update(text, **kw))
    assert isinstance(schema, ProtobufSchema), schema
    return schema


def test_runs_on_the_expected_protobuf() -> None:
    expected = os.environ.get("MEMPHIS_FAST_EXPECT_PROTOBUF")
    if expected:
        assert google.protobuf.__version__ == expected
    assert hasattr(message_factory, "GetMessageClass")


def test_descriptor_is_built_like_the_broker() -> None:
    descriptor, struct = protoc_descriptor(ORDER_PROTO, "orders", 3)
    assert struct == "Order"
    schema = proto(name="orders", version=3)
    assert schema.full_name == "shop.Order"
    assert schema.message_class.DESCRIPTOR.file.name == "orders_3.proto"


def test_message_object_bytes_and_dict() -> None:
    schema = proto()
    cls = schema.message_class
    msg = cls(a=300, b="x", r=[1, 2], price=1.5)
    wire = msg.SerializeToString()
    assert schema.encode(msg) == wire
    for wrap in (bytes, bytearray, memoryview):
        out = schema.encode(wrap(wire))
        assert type(out) is bytes and out == wire
    assert schema.encode({"a": 300, "b": "x", "r": [1, 2], "price": 1.5}) == wire
    assert schema.encode(wire) is wire


def test_message_of_another_class_with_the_same_type() -> None:
    """A user's own generated class (another pool) is accepted through its serialization."""
    descriptor, struct = protoc_descriptor(ORDER_PROTO, "orders")
    import base64

    from google.protobuf import descriptor_pb2

    fds = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(descriptor))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fds.file[0])
    user_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("shop.Order"))
    schema = proto()
    assert user_cls is not schema.message_class
    msg = user_cls(a=5, b="y")
    assert schema.encode(msg) == msg.SerializeToString()


def test_b4_dict_fields_do_not_leak_between_messages() -> None:
    schema = proto()
    first = schema.encode({"a": 5, "r": [1]})
    second = schema.encode({"b": "x"})
    cls = schema.message_class
    assert cls.FromString(first) == cls(a=5, r=[1])
    assert cls.FromString(second) == cls(b="x")
    assert second == cls(b="x").SerializeToString()


@pytest.mark.skipif(not MEMPHIS_PY_PROTOBUF_WORKS, reason="memphis-py needs protobuf < 6.30")
def test_b4_memphis_py_leaks() -> None:
    """The defect this replaces: memphis-py merges every dict into one shared prototype."""
    station = memphis_py_station(protobuf_update(ORDER_PROTO))
    station.validate_protobuf({"a": 5, "addr": {"city": "c"}})
    leaked = station.validate_protobuf({"b": "x"})
    cls = proto().message_class
    assert cls.FromString(leaked) != cls(b="x")  # a=5 and addr came along


def test_b5_valid_binary_is_accepted_unchanged() -> None:
    schema = proto()
    for wire in (b"\x08\x96\x01", b"!\x00\x00\x00\x00\x00\x00\xf8?", b""):
        assert schema.encode(bytearray(wire)) == wire
        assert schema.encode(wire) == wire


@pytest.mark.skipif(not MEMPHIS_PY_PROTOBUF_WORKS, reason="memphis-py needs protobuf < 6.30")
def test_b5_memphis_py_rejects_valid_binary() -> None:
    from memphis.exceptions import MemphisSchemaError as PyError

    station = memphis_py_station(protobuf_update(ORDER_PROTO))
    with pytest.raises(PyError, match="utf-8"):
        station.validate_protobuf(bytearray(b"\x08\x96\x01"))


def test_b19_class_is_built_without_get_prototype() -> None:
    schema = proto()
    assert issubclass(schema.message_class, Message)
    if not MEMPHIS_PY_PROTOBUF_WORKS:
        # On protobuf >= 6.30 memphis-py cannot even build the class.
        from memphis.exceptions import MemphisError as PyError

        with pytest.raises(PyError, match="GetPrototype"):
            memphis_py_station(protobuf_update(ORDER_PROTO))


def test_decode_returns_a_fresh_object_each_time() -> None:
    schema = proto()
    wire = schema.message_class(a=1, r=[7]).SerializeToString()
    one = schema.decode(wire)
    two = schema.decode(bytearray(wire))
    assert one == two and one is not two
    one.r.append(8)
    assert list(schema.decode(memoryview(wire)).r) == [7]


@pytest.mark.parametrize("bad", [b"\xff\xff\xff", b"\x0a\x05ab", b"\x08"])
def test_invalid_binary(bad: bytes) -> None:
    with pytest.raises(MemphisSchemaError) as info:
        proto().encode(bad)
    assert info.value.message == "Schema validation has failed: Invalid message format, expecting protobuf"
    assert info.value.payload == bad  # type: ignore[attr-defined]
    with pytest.raises(MemphisSchemaError) as info:
        proto().decode(bad)
    assert info.value.message == (
        "Deserialization has been failed since the message format does not align with the "
        "currently attached schema: Invalid message format, expecting protobuf"
    )


@pytest.mark.parametrize("message", ["text", 5, None, ["a"]])
def test_unsupported(message: Any) -> None:
    with pytest.raises(MemphisSchemaError) as info:
        proto().encode(message)
    assert info.value.message == "Schema validation has failed: Unsupported message type"


def test_dict_error_text_is_parse_dicts() -> None:
    with pytest.raises(MemphisSchemaError) as info:
        proto().encode({"nope": 1})
    assert info.value.message == (
        'Schema validation has failed: Message type "shop.Order" has no field named "nope" at "Order".\n'
        " Available Fields(except extensions): \"['a', 'b', 'r', 'price', 'addr']\""
    )
    if MEMPHIS_PY_PROTOBUF_WORKS:
        from memphis.exceptions import MemphisSchemaError as PyError

        station = memphis_py_station(protobuf_update(ORDER_PROTO))
        with pytest.raises(PyError) as theirs:
            station.validate_protobuf({"nope": 1})
        # memphis-py wraps its own MemphisSchemaError once more, leaving a stray "memphis: " inside
        assert theirs.value.message.replace("failed: memphis: ", "failed: ") == info.value.message


def test_no_package_and_struct_name_rules() -> None:
    schema = proto(NO_PACKAGE_PROTO, name="pings")
    assert schema.full_name == "Ping"
    descriptor, _ = protoc_descriptor(NO_PACKAGE_PROTO, "pings")
    assert build_message_class(descriptor, "Pong").DESCRIPTOR.full_name == "Pong"
    assert build_message_class(descriptor, "").DESCRIPTOR.full_name == "Ping"
    with pytest.raises(ValueError, match="Nope"):
        build_message_class(descriptor, "Nope")


def test_well_known_imports_resolve_without_include_imports() -> None:
    schema = proto(WKT_PROTO, name="events")
    wire = schema.encode({"name": "x", "at": "2024-05-01T12:00:00Z"})
    assert schema.decode(wire).at.seconds == 1714564800


def test_proto2_required_fields() -> None:
    schema = proto(PROTO2, name="legacy")
    assert schema.encode({"id": 1}) == b"\x08\x01"
    with pytest.raises(MemphisSchemaError, match="missing required fields"):
        schema.encode({"note": "x"})
    with pytest.raises(MemphisSchemaError, match="missing required fields"):
        schema.encode(schema.message_class(note="x"))


def test_broken_descriptors() -> None:
    for update in [
        schema_update("protobuf", "x", descriptor="not base64!!", struct="X"),
        schema_update("protobuf", "x", descriptor="", struct="X"),
        schema_update("protobuf", "x", descriptor="AAAA", struct="X"),
    ]:
        schema = compile_schema(update)
        assert isinstance(schema, BrokenSchema), update
        with pytest.raises(MemphisSchemaError):
            schema.encode(b"")


# --- the dict fast path is byte-identical to ParseDict ---------------------------------------

ints32 = st.integers(min_value=-(2**31) - 2, max_value=2**31 + 1)
scalar = (
    st.none()
    | st.booleans()
    | ints32
    | st.integers(min_value=-(2**64), max_value=2**64 + 1)
    | st.floats()
    | st.text(max_size=3)
    | st.sampled_from(["RED", "GREEN", "PURPLE", "1", "AAE=", "\ud800"])
    | st.binary(max_size=2)
)


def _inner(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, Any] = {
        "x": scalar,
        "colors": st.lists(st.sampled_from(["RED", 2, 7, "BLUE"]) | scalar, max_size=2),
    }
    if depth > 0:
        fields["back"] = _rich(depth - 1)
    return st.fixed_dictionaries({}, optional=fields)


def _rich(depth: int = 1) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "i32": ints32,
            "i64": scalar,
            "u32": scalar,
            "u64": scalar,
            "s32": ints32,
            "f64": scalar,
            "d": scalar,
            "f": scalar,
            "flag": scalar,
            "text": scalar,
            "blob": scalar,
            "color": scalar,
            "names": st.lists(scalar, max_size=3) | scalar,
            "inners": st.lists(_inner(depth - 1 if depth else 0), max_size=2),
            "counts": st.dictionaries(st.text(max_size=2) | st.integers(0, 2), scalar, max_size=2),
            "by_name": st.dictionaries(st.text(max_size=2), _inner(0), max_size=2),
            "inner": _inner(0) | scalar,
            "maybe": scalar,
            "left": st.text(max_size=2),
            "right": ints32,
            "camel_case_field": ints32,
            "camelCaseField": ints32,
            "unknown": scalar,
        },
    )


@settings(max_examples=examples(600), deadline=None)
@given(value=_rich(2))
def test_dict_fast_path_matches_parse_dict(value: dict[str, Any]) -> None:
    schema = proto(RICH_PROTO, name="rich")
    cls = schema.message_class
    try:
        expected: bytes | None = json_format.ParseDict(value, cls()).SerializeToString()
    except Exception:  # noqa: BLE001 - ParseDict's own rejection
        expected = None
    try:
        ours: bytes | None = schema.encode(value)
    except MemphisSchemaError:
        ours = None
    assert ours == expected


def test_dict_fast_path_is_taken_for_plain_dicts() -> None:
    from memphis_fast.schemaverse._protobuf import _fits

    schema = proto(RICH_PROTO, name="rich")
    plan = schema._plan  # type: ignore[attr-defined]
    assert plan is not None
    plain = {
        "i32": 1,
        "text": "é",
        "names": ["a"],
        "color": "BLUE",
        "inner": {"x": 2, "colors": [1]},
        "counts": {"k": 3},
    }
    assert _fits(plan, plain, 0)
    assert schema.encode(plain) == json_format.ParseDict(plain, schema.message_class()).SerializeToString()
    for slow in [
        {"blob": "AAE="},
        {"i32": True},
        {"i32": 1.0},
        {"camelCaseField": 1},
        {"left": "a", "right": 1},
        {"i64": "5"},
    ]:
        assert not _fits(plan, slow, 0), slow
