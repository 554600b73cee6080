"""Helpers for the schemaverse tests: broker-shaped schema objects, protoc descriptors built the way
the broker builds them, and memphis-py's validators called the way memphis-py calls them."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import google.protobuf
from google.protobuf import descriptor_pb2

PROTOBUF_VERSION = tuple(int(p) for p in google.protobuf.__version__.split(".")[:2])
# memphis-py's parse_descriptor calls MessageFactory.GetPrototype, removed in protobuf 6.30 (B19).
MEMPHIS_PY_PROTOBUF_WORKS = PROTOBUF_VERSION < (6, 30)


def protoc_path() -> Path:
    return Path(sys.executable).parent / "protoc"


def schema_update(
    schema_type: str,
    content: str,
    *,
    name: str = "test-schema",
    version: int = 1,
    descriptor: str = "",
    struct: str = "",
) -> dict[str, Any]:
    """The ``schema_update``/``init`` object exactly as the broker sends it (docs/protocol.md §5.3, §5.10)."""
    return {
        "schema_name": name,
        "active_version": {
            "version_number": version,
            "descriptor": descriptor,
            "schema_content": content,
            "message_struct_name": struct,
        },
        "type": schema_type,
    }


def no_schema_update() -> dict[str, Any]:
    return schema_update("", "", name="", version=0)


def protoc_descriptor(proto_text: str, schema_name: str, version: int = 1) -> tuple[str, str]:
    """(base64 FileDescriptorSet, message_struct_name) as the broker computes them (docs/protocol.md §10.4):
    ``protoc --descriptor_set_out`` on ``<schema_name>_<version>.proto``, no ``--include_imports``;
    the struct name is the first top-level message of the file."""
    with tempfile.TemporaryDirectory() as tmp:
        src = f"{schema_name}_{version}.proto"
        Path(tmp, src).write_text(proto_text, encoding="utf-8")
        subprocess.run(
            [str(protoc_path()), "--descriptor_set_out=out.desc", src],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        raw = Path(tmp, "out.desc").read_bytes()
    fds = descriptor_pb2.FileDescriptorSet.FromString(raw)
    assert [f.name for f in fds.file] == [f"{schema_name}_{version}.proto"]
    return base64.b64encode(raw).decode("ascii"), fds.file[0].message_type[0].name


def protobuf_update(proto_text: str, *, name: str = "test-proto", version: int = 1) -> dict[str, Any]:
    descriptor, struct = protoc_descriptor(proto_text, name, version)
    return schema_update(
        "protobuf", proto_text, name=name, version=version, descriptor=descriptor, struct=struct
    )


STATION = "orders.eu"
INTERNAL_STATION = "orders#eu"


def memphis_py_station(update: dict[str, Any]) -> Any:
    """A memphis-py ``Station`` whose connection holds the compiled schema exactly as memphis-py's
    ``Memphis.update_schema_data`` builds it. Not a broker mock: the validators read only these
    dictionaries."""
    from memphis.memphis import Memphis
    from memphis.station import Station

    class Connection:
        # memphis-py's own methods, run on just the state they read and write.
        update_schema_data = Memphis.update_schema_data
        parse_descriptor = Memphis.parse_descriptor

        def __init__(self) -> None:
            self.schema_updates_data = {INTERNAL_STATION: update if update["schema_name"] else {}}
            self.proto_msgs: dict[str, Any] = {}
            self.json_schemas: dict[str, Any] = {}
            self.avro_schemas: dict[str, Any] = {}
            self.graphql_schemas: dict[str, Any] = {}

    conn = Connection()
    with warnings.catch_warnings():
        # protobuf 5 deprecates the GetPrototype call memphis-py makes (B19)
        warnings.simplefilter("ignore")
        conn.update_schema_data(STATION)
    return Station(conn, STATION)


def memphis_py_accepts(station: Any, schema_type: str, message: Any) -> bool:
    from memphis.exceptions import MemphisSchemaError

    validate = {
        "json": station.validate_json_schema,
        "avro": station.validate_avro_schema,
        "graphql": station.validate_graphql,
        "protobuf": station.validate_protobuf,
    }[schema_type]
    try:
        validate(message)
    except MemphisSchemaError:
        return False
    return True


def dumps(obj: Any) -> str:
    return json.dumps(obj)
