"""The four schema types as the end-to-end tests use them: two versions of each schema, valid
messages in every input type a producer accepts (with the value ``get_data_deserialized()``
gives back), invalid messages with the validator's reason, and per-version probes."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import graphql
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

PROTO_V1 = """syntax = "proto3";
package shop;

message Order {
  int32 id = 1;
  string item = 2;
  repeated string tags = 3;
}

message Unused {
  string x = 1;
}
"""

PROTO_V2 = """syntax = "proto3";
package shop;

message Order {
  int32 id = 1;
  string title = 4;
}
"""


@dataclass
class Invalid:
    message: Any
    reason: str  # the exact validator text (MemphisSchemaError.reason)
    wire: bytes  # the bytes the DLS report must carry (hex-encoded)


@dataclass
class Spec:
    type: str
    v1: str
    v2: str
    #: (label, message, normalized value get_data_deserialized() must give); the schema's own
    #: protobuf class and a foreign one are added by the tests (they need the descriptor)
    valid: list[tuple[str, Any, Any]]
    invalid: list[Invalid]
    #: bytes that match no version (produced before a schema is enforced)
    garbage: bytes
    #: valid under v1 only, and its value under v1
    v1_only: Any
    v1_value: Any
    #: valid under v2 only, and its value under v2
    v2_only: Any
    v2_value: Any
    #: the value of the v1-only message read while v2 is active; None = it does not match
    v1_under_v2: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def norm(value: Any) -> Any:
    """What a test compares: protobuf messages as (type name, proto-field-name dict)."""
    if isinstance(value, Message):
        return (
            value.DESCRIPTOR.full_name,
            json_format.MessageToDict(value, preserving_proto_field_name=True),
        )
    return value


def foreign_message_class(descriptor_b64: str, name: str) -> type[Message]:
    """A message class built by the test itself (its own descriptor pool) from the broker's
    descriptor: what an application's generated code is to the client, an unrelated class."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(descriptor_b64))
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    cls: type[Message] = message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    return cls


def _j(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


JSON_V1 = json.dumps(
    {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
        "required": ["id"],
    }
)
JSON_V2 = json.dumps({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]})

AVRO_V1 = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "fields": [{"name": "id", "type": "int"}, {"name": "name", "type": ["null", "string"]}],
    }
)
AVRO_V2 = json.dumps({"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]})

GRAPHQL_V1 = """type Query {
  hello: String
  order(id: Int!): Order
}

type Order {
  id: Int
  item: String
}
"""
GRAPHQL_V2 = "type Query { goodbye: String }"

ORDER = ("shop.Order", {"id": 7, "item": "book", "tags": ["a", "b"]})
ORDER_BIN = b"\x08\x07\x12\x04book\x1a\x01a\x1a\x01b"  # the same order, serialized

SPECS: dict[str, Spec] = {
    "json": Spec(
        type="json",
        v1=JSON_V1,
        v2=JSON_V2,
        valid=[
            ("dict", {"id": 1, "name": "ä"}, {"id": 1, "name": "ä"}),
            ("bytes", b'{"id": 2}', {"id": 2}),
            ("bytearray", bytearray(b'{"id":3,"name":"x"}'), {"id": 3, "name": "x"}),
            ("memoryview", memoryview(b'{"id": 4}'), {"id": 4}),
            ("str", '{"id": 5, "name": "\u00e9"}', {"id": 5, "name": "é"}),
        ],
        invalid=[
            Invalid({"name": "x"}, '"id" is a required property', _j({"name": "x"})),
            Invalid(b'{"id": "x"}', '"x" is not of type "integer" (at /id)', b'{"id": "x"}'),
            Invalid(
                b"not json\xff",
                "Expecting Json format: 'utf-8' codec can't decode byte 0xff in position 8: "
                "invalid start byte",
                b"not json\xff",
            ),
            Invalid(42, "Unsupported message type", b"42"),
        ],
        garbage=b"not json at all",
        v1_only={"id": 1},
        v1_value={"id": 1},
        v2_only={"id": "a"},
        v2_value={"id": "a"},
    ),
    "avro": Spec(
        type="avro",
        v1=AVRO_V1,
        v2=AVRO_V2,
        valid=[
            ("dict", {"id": 1, "name": "ä"}, {"id": 1, "name": "ä"}),
            ("bytes", b'{"id": 2, "name": null}', {"id": 2, "name": None}),
            ("bytearray", bytearray(b'{"id":3,"name":"x"}'), {"id": 3, "name": "x"}),
            ("memoryview", memoryview(b'{"id": 4, "name": null}'), {"id": 4, "name": None}),
            ("str", '{"id": 5, "name": "\u00e9"}', {"id": 5, "name": "é"}),
        ],
        invalid=[
            Invalid(
                {"id": "x", "name": None},
                "[\n  \"Order.id is <x> of type <class 'str'> expected int\"\n]",
                _j({"id": "x", "name": None}),
            ),
            Invalid(
                b"{oops",
                "Expecting Avro format: Expecting property name enclosed in double "
                "quotes: line 1 column 2 (char 1)",
                b"{oops",
            ),
            Invalid(3.5, "Unsupported message type", b"3.5"),
        ],
        garbage=b"not avro json",
        v1_only={"id": 1, "name": None},
        v1_value={"id": 1, "name": None},
        v2_only={"id": "a"},
        v2_value={"id": "a"},
    ),
    "protobuf": Spec(
        type="protobuf",
        v1=PROTO_V1,
        v2=PROTO_V2,
        valid=[
            ("dict", {"id": 7, "item": "book", "tags": ["a", "b"]}, ORDER),
            ("bytes", ORDER_BIN, ORDER),
            ("bytearray", bytearray(ORDER_BIN), ORDER),
            ("memoryview", memoryview(ORDER_BIN), ORDER),
            # The protobuf JSON mapping: camelCase names, int64-as-string are ParseDict's.
            ("dict (JSON mapping)", {"id": "7", "item": "book", "tags": ["a", "b"]}, ORDER),
        ],
        invalid=[
            Invalid(b"\xff\xff\xff\xff", "Invalid message format, expecting protobuf", b"\xff\xff\xff\xff"),
            Invalid(
                {"id": 1, "title": "x"},
                'Message type "shop.Order" has no field named "title" at "Order".\n'
                " Available Fields(except extensions): \"['id', 'item', 'tags']\"",
                _j({"id": 1, "title": "x"}),
            ),
            Invalid("text", "Unsupported message type", b"text"),
        ],
        garbage=b"\xff\xff\xff\xff garbage",
        v1_only={"id": 1, "item": "book"},
        v1_value=("shop.Order", {"id": 1, "item": "book"}),
        v2_only={"id": 2, "title": "t"},
        v2_value=("shop.Order", {"id": 2, "title": "t"}),
        # v1's bytes still parse under v2: field 2 is an unknown field there.
        v1_under_v2=("shop.Order", {"id": 1}),
    ),
    "graphql": Spec(
        type="graphql",
        v1=GRAPHQL_V1,
        v2=GRAPHQL_V2,
        valid=[
            ("str", "query { hello }", "query { hello }"),
            ("bytes", b"{ order(id: 1) { id item } }", "{ order(id: 1) { id item } }"),
            ("bytearray", bytearray(b"query Q { hello }"), "query Q { hello }"),
            ("memoryview", memoryview(b"{ hello }"), "{ hello }"),
            (
                "DocumentNode",
                graphql.parse("query Doc { order(id: 2) { item } }"),
                "query Doc { order(id: 2) { item } }",
            ),
        ],
        invalid=[
            Invalid(
                "query { goodbye }",
                "Cannot query field 'goodbye' on type 'Query'. (line 1, column 9)",
                b"query { goodbye }",
            ),
            Invalid(b"not graphql {", "Invalid message format, expected GraphQL", b"not graphql {"),
            Invalid({"query": "x"}, "Unsupported message type", _j({"query": "x"})),
        ],
        garbage=b"not graphql {",
        v1_only="query { hello }",
        v1_value="query { hello }",
        v2_only="query { goodbye }",
        v2_value="query { goodbye }",
    ),
}
