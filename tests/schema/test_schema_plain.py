"""Stations without a schema: memphis-py's payload rules plus bytes and memoryview (B17)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from graphql import parse
from schemaverse_helpers import memphis_py_station, no_schema_update

from memphis_fast.exceptions import MemphisSchemaError
from memphis_fast.schemaverse import encode_plain, failed_message_bytes


def test_bytes_pass_through_unchanged() -> None:
    raw = b"\x00\xffraw"
    assert encode_plain(raw) is raw
    assert encode_plain(bytearray(raw)) == raw
    assert encode_plain(memoryview(raw)) == raw
    assert type(encode_plain(memoryview(raw))) is bytes


def test_str_dict_document_protobuf() -> None:
    assert encode_plain("héllo") == "héllo".encode()
    assert encode_plain({"a": [1, None]}) == b'{"a":[1,null]}'
    assert encode_plain(parse("{ a }")) == b"{ a }"
    from google.protobuf import struct_pb2

    value = struct_pb2.Value(string_value="x")
    assert encode_plain(value) == value.SerializeToString()


@pytest.mark.parametrize("message", [1, 1.5, None, [1, 2], (1,), {1, 2}, object()])
def test_unsupported(message: Any) -> None:
    with pytest.raises(MemphisSchemaError) as info:
        encode_plain(message)
    assert info.value.message == "Unsupported message type"


def test_unencodable_values() -> None:
    with pytest.raises(MemphisSchemaError, match="Unsupported message type"):
        encode_plain({"a": {1, 2}})
    with pytest.raises(MemphisSchemaError, match="not valid UTF-8"):
        encode_plain("\ud800")


@pytest.mark.parametrize("message", ["text", {"a": 1, "b": "é"}, bytearray(b"raw"), parse("{ a }")])
async def test_same_payload_as_memphis_py(message: Any) -> None:
    station = memphis_py_station(no_schema_update())
    theirs = await station.validate_msg(message)
    ours = encode_plain(message)
    if isinstance(message, dict):
        assert json.loads(ours) == json.loads(theirs)  # same JSON, orjson writes no spaces
    else:
        assert ours == bytes(theirs)


async def test_memphis_py_rejected_bytes() -> None:
    from memphis.exceptions import MemphisSchemaError as PyError

    with pytest.raises(PyError, match="Unsupported message type"):
        await memphis_py_station(no_schema_update()).validate_msg(b"raw")


def test_failed_message_bytes() -> None:
    assert failed_message_bytes(b"\x01") == b"\x01"
    assert failed_message_bytes(memoryview(b"\x01")) == b"\x01"
    assert failed_message_bytes("é") == "é".encode()
    assert failed_message_bytes({"a": 1}) == b'{"a":1}'
    assert failed_message_bytes({"a": {1}}) == b"{'a': {1}}"
    assert failed_message_bytes({"n": math.nan}) == b'{"n":null}'
    assert failed_message_bytes(parse("{ a }")) == b"{ a }"
    assert failed_message_bytes(12) == b"12"
    from google.protobuf import struct_pb2

    assert (
        failed_message_bytes(struct_pb2.Value(number_value=1))
        == struct_pb2.Value(number_value=1).SerializeToString()
    )
