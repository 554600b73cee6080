"""Protobuf stations: the message class is built once per schema version from the broker's base64
``FileDescriptorSet`` and ``message_struct_name``, with ``message_factory.GetMessageClass`` (the
``MessageFactory.GetPrototype`` that memphis-py calls was removed in protobuf 6.30, defect B19).

Every message gets a fresh object (memphis-py parsed every dict into one shared prototype, so
fields leaked from one message into the next, B4), and valid binary is sent unchanged (memphis-py
tried to UTF-8-decode it, B5).

Dicts follow the protobuf JSON mapping of ``json_format.ParseDict`` (memphis-py's converter),
which is the authority. A dict made only of plain values -- proto field names, exact ``int``/
``float``/``bool``/``str``, lists and nested dicts, string-keyed maps, enum names or numbers --
goes through the message constructor instead, about ten times faster; the shapes where the two
could disagree (bytes, 64-bit float ranges, oneofs, well-known types, JSON names, ``None``) are
left to ``ParseDict``, and any error on the fast path is re-done by ``ParseDict`` for its text.
"""

from __future__ import annotations

import base64
import importlib
import math
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from ._base import UNSUPPORTED, Schema, fail, fail_decode

__all__ = ["ProtobufSchema", "build_message_class"]

INVALID_PROTOBUF = "Invalid message format, expecting protobuf"


def _decode_reason(err: Exception) -> str:
    # memphis-py's mapping: a parse failure becomes the fixed text; anything else keeps its own.
    text = str(err)
    return INVALID_PROTOBUF if not text or "parsing message" in text else text


def _add_file(
    pool: descriptor_pool.DescriptorPool,
    files: dict[str, descriptor_pb2.FileDescriptorProto],
    name: str,
    added: set[str],
) -> None:
    if name in added:
        return
    added.add(name)
    proto = files.get(name)
    if proto is None:
        # Not in the set (the broker runs protoc without --include_imports): only the well-known
        # types can be found, from protobuf's own generated modules.
        proto = _well_known_file(name)
    for dep in proto.dependency:
        _add_file(pool, files, dep, added)
    pool.Add(proto)


def _well_known_file(name: str) -> descriptor_pb2.FileDescriptorProto:
    if name.startswith("google/protobuf/") and name.endswith(".proto"):
        module = "google.protobuf." + name[len("google/protobuf/") : -len(".proto")] + "_pb2"
        try:
            importlib.import_module(module)
            found = descriptor_pool.Default().FindFileByName(name)
        except (ImportError, KeyError):
            pass
        else:
            proto = descriptor_pb2.FileDescriptorProto()
            found.CopyToProto(proto)
            return proto
    raise ValueError(f"the descriptor imports {name!r}, which it does not contain")


def build_message_class(descriptor_b64: str, message_struct_name: str) -> type[Message]:
    """The message class for ``message_struct_name`` in a base64 ``FileDescriptorSet``.

    The name is resolved as memphis-py does (``<package>.<name>`` in the first file of the set),
    then as a top-level message of any file in the set; an empty name means the first top-level
    message of the first file (the broker's rule). Raises ``ValueError``.
    """
    try:
        raw = base64.b64decode(descriptor_b64)
        fds = descriptor_pb2.FileDescriptorSet.FromString(raw)
    except Exception as e:  # binascii.Error, DecodeError
        raise ValueError(f"invalid protobuf descriptor: {e}") from None
    if not fds.file:
        raise ValueError("invalid protobuf descriptor: it contains no file")
    files = {f.name: f for f in fds.file}
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    try:
        for f in fds.file:
            _add_file(pool, files, f.name, added)
    except ValueError:
        raise
    except Exception as e:  # TypeError/KeyError from the pool on a bad set
        raise ValueError(f"invalid protobuf descriptor: {e}") from None

    first = fds.file[0]
    struct = message_struct_name
    if not struct:
        if not first.message_type:
            raise ValueError("the protobuf descriptor has no message type")
        struct = first.message_type[0].name
    candidates = [f"{first.package}.{struct}" if first.package else struct]
    candidates += [
        f"{f.package}.{struct}" if f.package else struct
        for f in fds.file
        if any(m.name == struct for m in f.message_type)
    ]
    for full_name in candidates:
        try:
            desc = pool.FindMessageTypeByName(full_name)
        except KeyError:
            continue
        return _message_class(desc)
    raise ValueError(f"message type {struct!r} is not in the protobuf descriptor")


def _message_class(desc: Descriptor) -> type[Message]:
    get_class = getattr(message_factory, "GetMessageClass", None)
    if get_class is not None:
        cls: type[Message] = get_class(desc)
        return cls
    # protobuf < 4.21 (only old environments): the API memphis-py used.
    factory = message_factory.MessageFactory(desc.file.pool)  # pragma: no cover
    return factory.GetPrototype(desc)  # type: ignore[no-any-return]  # pragma: no cover


# --- the dict fast path ------------------------------------------------------------------------

_Check = Callable[[Any, int], bool]
_MAX_DEPTH = 64  # ParseDict refuses nesting beyond 100; stay well inside it
_FLOAT_MAX = 3.4028234663852886e38

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _int_check(lo: int, hi: int) -> _Check:
    def check(v: Any, depth: int) -> bool:
        return type(v) is int and lo <= v <= hi

    return check


def _double_check(v: Any, depth: int) -> bool:
    t = type(v)
    return (t is float and math.isfinite(v)) or (t is int and -(2**1023) < v < 2**1023)


def _float_check(v: Any, depth: int) -> bool:
    t = type(v)
    return (t is float or t is int) and -_FLOAT_MAX <= v <= _FLOAT_MAX


def _bool_check(v: Any, depth: int) -> bool:
    return v is True or v is False


def _string_check(v: Any, depth: int) -> bool:
    if type(v) is not str:
        return False
    if v.isascii():
        return True
    try:  # ParseDict refuses lone surrogates; so does encoding
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Plan:
    """How to check a dict for one message type: field name -> value check, and the oneofs with
    several members (ParseDict refuses two members of one oneof; the constructor does not)."""

    __slots__ = ("checks", "oneofs")

    def __init__(self, checks: dict[str, _Check], oneofs: list[tuple[str, ...]]) -> None:
        self.checks = checks
        self.oneofs = oneofs


class _Plans:
    """Per message type: its :class:`_Plan`, or ``None`` if the type must use ParseDict."""

    def __init__(self) -> None:
        self.plans: dict[str, _Plan | None] = {}

    def plan(self, desc: Descriptor) -> _Plan | None:
        name = desc.full_name
        if name in self.plans:
            return self.plans[name]
        self.plans[name] = None  # recursion guard; a recursive type is planned lazily below
        plan = self._build(desc)
        self.plans[name] = plan
        return plan

    def _build(self, desc: Descriptor) -> _Plan | None:
        if desc.full_name.startswith("google.protobuf."):
            return None  # well-known types have their own JSON forms
        by_json = {f.json_name: f for f in desc.fields}
        plan: dict[str, _Check] = {}
        for f in desc.fields:
            other = by_json.get(f.name)
            if other is not None and other is not f:
                continue  # ParseDict would read this key as another field's JSON name
            check = self._field_check(f)
            if check is not None:
                plan[f.name] = check
        oneofs = [tuple(f.name for f in o.fields) for o in desc.oneofs if len(o.fields) > 1]
        return _Plan(plan, oneofs)

    def _field_check(self, f: FieldDescriptor) -> _Check | None:
        if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.GetOptions().map_entry:
            key_f = f.message_type.fields_by_name["key"]
            value_check = self._scalar_or_message(f.message_type.fields_by_name["value"])
            if key_f.type != FieldDescriptor.TYPE_STRING or value_check is None:
                return None

            def map_check(v: Any, depth: int) -> bool:
                if type(v) is not dict:
                    return False
                for k, x in v.items():
                    if type(k) is not str or not _string_check(k, depth) or not value_check(x, depth):
                        return False
                return True

            return map_check
        item = self._scalar_or_message(f)
        if item is None:
            return None
        if _is_repeated(f):

            def repeated_check(v: Any, depth: int) -> bool:
                if type(v) is not list:
                    return False
                for x in v:
                    if not item(x, depth):
                        return False
                return True

            return repeated_check
        return item

    def _scalar_or_message(self, f: FieldDescriptor) -> _Check | None:
        t = f.type
        if t in _INT_RANGES:
            return _int_check(*_INT_RANGES[t])
        if t == FieldDescriptor.TYPE_DOUBLE:
            return _double_check
        if t == FieldDescriptor.TYPE_FLOAT:
            return _float_check
        if t == FieldDescriptor.TYPE_BOOL:
            return _bool_check
        if t == FieldDescriptor.TYPE_STRING:
            return _string_check
        if t == FieldDescriptor.TYPE_ENUM:
            enum = f.enum_type
            names = frozenset(enum.values_by_name)
            numbers = frozenset(enum.values_by_number)

            def enum_check(v: Any, depth: int) -> bool:
                t = type(v)
                return (t is str and v in names) or (t is int and v in numbers)

            return enum_check
        if t == FieldDescriptor.TYPE_MESSAGE:
            sub = f.message_type
            plans = self

            def message_check(v: Any, depth: int) -> bool:
                if type(v) is not dict or depth >= _MAX_DEPTH:
                    return False
                plan = plans.plan(sub)
                return plan is not None and _fits(plan, v, depth + 1)

            return message_check
        return None  # bytes (base64 in ParseDict), groups


def _is_repeated(f: FieldDescriptor) -> bool:
    # protobuf 7 removed FieldDescriptor.label; protobuf 5 has no is_repeated.
    repeated = getattr(f, "is_repeated", None)
    if repeated is not None:
        return bool(repeated)
    return bool(f.label == FieldDescriptor.LABEL_REPEATED)


def _fits(plan: _Plan, d: dict[Any, Any], depth: int) -> bool:
    checks = plan.checks
    for k, v in d.items():
        check = checks.get(k) if type(k) is str else None
        if check is None or not check(v, depth):
            return False
    for members in plan.oneofs:
        if sum(1 for m in members if m in d) > 1:
            return False
    return True


class ProtobufSchema(Schema):
    """``type == "protobuf"``. Accepts a message object (of any class whose serialization parses
    as the schema's type), ``bytes``/``bytearray``/``memoryview`` holding the binary encoding
    (sent unchanged), and ``dict`` in the protobuf JSON mapping.

    ``message_class`` is the schema's generated class; messages of exactly that class (for example
    from :meth:`decode`) skip the re-parse.
    """

    __slots__ = ("message_class", "full_name", "_plan", "_from_string")

    def __init__(self, name: str, version: int, descriptor_b64: str, message_struct_name: str) -> None:
        super().__init__("protobuf", name, version)
        cls = build_message_class(descriptor_b64, message_struct_name)
        self.message_class = cls
        self.full_name = cls.DESCRIPTOR.full_name
        self._plan = _Plans().plan(cls.DESCRIPTOR)
        self._from_string = cls.FromString

    def _from_dict(self, message: dict[Any, Any]) -> bytes:
        cls = self.message_class
        plan = self._plan
        if plan is not None:
            try:
                if _fits(plan, message, 0):
                    data: bytes = cls(**message).SerializeToString()
                    return data
            except Exception:  # ParseDict below decides and words the error
                pass
        try:
            data = json_format.ParseDict(message, cls()).SerializeToString()
        except Exception as e:  # ParseError, EncodeError (missing required fields)
            fail(str(e), message)
        return data

    def encode(self, message: Any) -> bytes:
        t = type(message)
        if t is bytes:
            try:
                self._from_string(message)
            except Exception as e:  # DecodeError, RecursionError
                fail(_decode_reason(e), message, message)
            return message  # type: ignore[no-any-return]
        if t is dict:
            return self._from_dict(message)
        if t is self.message_class:
            try:
                return message.SerializeToString()  # type: ignore[no-any-return]
            except Exception as e:  # EncodeError: missing required fields
                fail(str(e), message)
        if isinstance(message, (bytes, bytearray, memoryview)):
            data = bytes(message)
            try:
                self._from_string(data)
            except Exception as e:
                fail(_decode_reason(e), message, data)
            return data
        if isinstance(message, dict):
            return self._from_dict(message)
        if hasattr(message, "SerializeToString"):
            try:
                data = message.SerializeToString()
            except Exception as e:
                fail(str(e), message)
            try:
                self._from_string(data)
            except Exception as e:
                fail(_decode_reason(e), message, data)
            return data  # type: ignore[no-any-return]
        fail(UNSUPPORTED, message)

    def decode(self, data: bytes | bytearray | memoryview) -> Message:
        """A fresh message object (memphis-py returned one shared, reused instance)."""
        try:
            return self._from_string(data if type(data) is bytes else bytes(data))
        except Exception as e:
            fail_decode(_decode_reason(e))
