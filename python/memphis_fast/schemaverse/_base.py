"""Shared pieces: the :class:`Schema` base class, error construction, JSON helpers, plain encoding."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import orjson

from ..exceptions import MemphisSchemaError

__all__ = [
    "VALIDATION_PREFIX",
    "DESERIALIZATION_PREFIX",
    "UNSUPPORTED",
    "Schema",
    "BrokenSchema",
    "encode_plain",
    "failed_message_bytes",
]

# memphis-py's texts, kept verbatim (station.py, message.py).
VALIDATION_PREFIX = "Schema validation has failed: "
DESERIALIZATION_PREFIX = (
    "Deserialization has been failed since the message format does not align with the currently "
    "attached schema: "
)
UNSUPPORTED = "Unsupported message type"

_BYTES_TYPES = (bytes, bytearray, memoryview)


class Schema:
    """A compiled schema version. Immutable and shared: one object serves every producer and
    consumer of every station that uses this version, so it holds no per-message state.

    Attributes: ``type`` (``"json"``, ``"avro"``, ``"protobuf"``, ``"graphql"``), ``name``,
    ``version`` (the broker's ``version_number``), ``compile_error`` (``None``, or why the schema
    text could not be compiled; such a schema rejects every message, see :class:`BrokenSchema`).
    """

    __slots__ = ("type", "name", "version", "compile_error")

    def __init__(self, schema_type: str, name: str, version: int) -> None:
        self.type = schema_type
        self.name = name
        self.version = version
        self.compile_error: str | None = None

    def encode(self, message: Any) -> bytes:
        """Validate ``message`` and return the exact bytes to publish.

        Raises :class:`MemphisSchemaError` (``"Schema validation has failed: <reason>"``) with the
        attributes ``reason`` and ``payload`` (the bytes that would have been sent, for the
        schemaverse DLS report).
        """
        raise NotImplementedError

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        """Validate received bytes and return them deserialized (``get_data_deserialized``).

        Raises :class:`MemphisSchemaError` (``"Deserialization has been failed since ..."``).
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        broken = f", compile_error={self.compile_error!r}" if self.compile_error else ""
        return f"<{type(self).__name__} {self.name!r} v{self.version}{broken}>"


class BrokenSchema(Schema):
    """A schema whose text could not be compiled. It fails closed: every message is rejected with
    the compile error, so nothing unvalidated reaches a station that enforces a schema."""

    __slots__ = ()

    def __init__(self, schema_type: str, name: str, version: int, error: str) -> None:
        super().__init__(schema_type, name, version)
        self.compile_error = error

    def encode(self, message: Any) -> bytes:
        fail(self.compile_error or "invalid schema", message)

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        fail_decode(self.compile_error or "invalid schema")


def fail(reason: str, message: Any, payload: bytes | None = None) -> NoReturn:
    """Raise the producer-side validation error; ``payload`` defaults to the message's bytes."""
    if payload is None:
        payload = failed_message_bytes(message)
    raise MemphisSchemaError(VALIDATION_PREFIX + reason, reason=reason, payload=payload)


def fail_decode(reason: str) -> NoReturn:
    raise MemphisSchemaError(DESERIALIZATION_PREFIX + reason, reason=reason)


def json_dumps(obj: Any) -> bytes:
    """orjson, falling back to the standard library for what only it encodes (integers beyond
    64 bits, non-string keys), as memphis-py's ``json.dumps`` accepted those."""
    try:
        return orjson.dumps(obj)
    except TypeError as first:
        try:
            return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError, RecursionError):
            raise first from None


def json_loads(data: bytes | bytearray | memoryview | str) -> Any:
    """orjson, falling back to the standard library (memphis-py's parser) for what only it reads
    (NaN/Infinity, integers beyond 64 bits, UTF-16/32 text, lone surrogates). Raises
    ``ValueError`` with the standard library's message, i.e. memphis-py's error text."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(bytes(data) if isinstance(data, memoryview) else data)


def _document_text(message: Any) -> str | None:
    """The source text of a graphql-core ``DocumentNode``, or ``None`` if ``message`` is not one.
    graphql is only looked up if it was already imported: no DocumentNode can exist otherwise."""
    ast = sys.modules.get("graphql.language.ast")
    if ast is None or not isinstance(message, ast.DocumentNode):
        return None
    loc = message.loc
    if loc is not None and loc.source is not None:
        return str(loc.source.body)
    # A document built without locations (memphis-py crashed on these): print it.
    from graphql.language.printer import print_ast

    return str(print_ast(message))


def encode_plain(message: Any) -> bytes:
    """The payload for a station without a schema (memphis-py ``validate_msg`` with no schema).

    ``bytes`` is sent as is; ``bytearray``/``memoryview`` are copied; ``str`` is UTF-8; ``dict``
    is JSON (orjson); a protobuf message is serialized; a graphql ``DocumentNode`` is its source
    text. Anything else raises ``MemphisSchemaError("Unsupported message type")``. Unlike
    memphis-py, ``bytes`` and ``memoryview`` are accepted (defect B17).
    """
    t = type(message)
    if t is bytes:
        return message  # type: ignore[no-any-return]
    if t is str:
        return _utf8(message)
    if t is bytearray or t is memoryview:
        return bytes(message)
    if t is dict:
        return _plain_json(message)
    if isinstance(message, str):
        return _utf8(message)
    text = _document_text(message)
    if text is not None:
        return _utf8(text)
    if hasattr(message, "SerializeToString"):
        return message.SerializeToString()  # type: ignore[no-any-return]
    if isinstance(message, _BYTES_TYPES):
        return bytes(message)
    if isinstance(message, dict):
        return _plain_json(message)
    raise MemphisSchemaError(UNSUPPORTED)


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise MemphisSchemaError(f"{UNSUPPORTED}: the text is not valid UTF-8 ({e.reason})") from None


def _plain_json(message: Any) -> bytes:
    try:
        return json_dumps(message)
    except TypeError as e:
        raise MemphisSchemaError(f"{UNSUPPORTED}: {e}") from None


def failed_message_bytes(message: Any) -> bytes:
    """Best-effort bytes of a message that failed validation, for the schemaverse DLS report.

    The bytes the producer would have sent where they exist (bytes as given, text as UTF-8, JSON
    for dicts, the protobuf serialization, a GraphQL document's text); ``str(message)`` as UTF-8
    for anything else. memphis-py sent ``str(dict)``/``str(bytes)``, i.e. Python reprs.
    """
    if isinstance(message, _BYTES_TYPES):
        return bytes(message)
    if isinstance(message, str):
        return message.encode("utf-8", "surrogatepass")
    if isinstance(message, (dict, list)):
        try:
            return json_dumps(message)
        except (TypeError, ValueError):
            pass
    else:
        text = _document_text(message)
        if text is not None:
            return text.encode("utf-8", "surrogatepass")
        partial = getattr(message, "SerializePartialToString", None)
        if partial is not None:
            try:
                return partial()  # type: ignore[no-any-return]
            except Exception:  # best effort on an already failing path
                pass
    try:
        text = str(message)
    except Exception:  # RecursionError on absurd nesting, a broken __str__
        text = f"<{type(message).__name__}>"
    return text.encode("utf-8", "surrogatepass")
