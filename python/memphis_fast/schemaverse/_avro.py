"""Avro stations: fastavro, with the payload on the wire as JSON text (as the real clients send it).

fastavro is the authority: a message is valid exactly when ``fastavro.validate`` says so, and a
rejection carries fastavro's error text (memphis-py's). In front of it sits an *acceptor* generated
once per schema version: plain Python code that checks the common JSON shapes with exact type
tests and no per-node dispatch. It is conservative -- it may answer "not sure" for a value fastavro
accepts (numpy integers, tuples, subclasses), never "yes" for one fastavro rejects -- and every
"not sure" goes to fastavro. Schemas with constructs it does not model (logical types, error
unions) get no acceptor and always use fastavro.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fastavro

from ._base import UNSUPPORTED, Schema, fail, fail_decode, json_dumps, json_loads

__all__ = ["AvroSchema", "build_acceptor"]

_PRIMITIVE = {
    "null": "({v} is None)",
    "boolean": "({v} is True or {v} is False)",
    "int": "(type({v}) is int and -2147483648 <= {v} <= 2147483647)",
    "long": "(type({v}) is int and -9223372036854775808 <= {v} <= 9223372036854775807)",
    "float": "(type({v}) is float or type({v}) is int)",
    "double": "(type({v}) is float or type({v}) is int)",
    "string": "(type({v}) is str)",
    "bytes": "(type({v}) is bytes or type({v}) is bytearray)",
}


class _Unsupported(Exception):
    pass


class _Generator:
    """Writes one Python function per record, array, map and named type."""

    def __init__(self, named: dict[str, Any]) -> None:
        self.named = named
        self.blocks: list[str] = []
        self.consts: dict[str, Any] = {}
        self.named_fn: dict[str, str] = {}
        self.count = 0

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"_{prefix}{self.count}"

    def const(self, value: Any) -> str:
        name = self._name("c")
        self.consts[name] = value
        return name

    def expr(self, node: Any, v: str) -> str:
        if isinstance(node, str):
            if node in _PRIMITIVE:
                return _PRIMITIVE[node].format(v=v)
            if node in self.named:
                return f"{self.named_function(node, self.named[node])}({v})"
            raise _Unsupported(f"unknown type {node!r}")
        if isinstance(node, list):
            if not node:
                raise _Unsupported("empty union")
            return "(" + " or ".join(self.expr(branch, v) for branch in node) + ")"
        if not isinstance(node, dict) or "logicalType" in node:
            raise _Unsupported("logical type or unknown node")
        kind = node.get("type")
        if kind in ("record", "enum", "fixed"):
            full = node.get("name")
            if not isinstance(full, str):
                raise _Unsupported("unnamed type")
            return f"{self.named_function(full, node)}({v})"
        if kind == "array":
            return f"{self.array_function(node)}({v})"
        if kind == "map":
            return f"{self.map_function(node)}({v})"
        if isinstance(kind, (str, list, dict)):
            return self.expr(kind, v)  # {"type": "string"} and the like
        raise _Unsupported(f"unsupported node {kind!r}")

    def named_function(self, full: str, node: Any) -> str:
        if full in self.named_fn:
            return self.named_fn[full]
        fn = self._name("n")
        self.named_fn[full] = fn  # before the body: recursive types refer to themselves
        if not isinstance(node, dict):
            raise _Unsupported("named type is not an object")
        kind = node.get("type")
        if kind == "record":
            lines = [
                f"def {fn}(v):",
                "    if type(v) is not dict or '-type' in v:",
                "        return False",
            ]
            fields = node.get("fields")
            if not isinstance(fields, list):
                raise _Unsupported("record without fields")
            for field in fields:
                if not isinstance(field, dict) or not isinstance(field.get("name"), str):
                    raise _Unsupported("bad field")
                # fastavro: datum.get(name, default), a missing default meaning None.
                default = self.const(field.get("default"))
                lines.append(f"    x = v.get({field['name']!r}, {default})")
                lines.append(f"    if not {self.expr(field['type'], 'x')}:")
                lines.append("        return False")
            lines.append("    return True")
        elif kind == "enum":
            symbols = node.get("symbols")
            if not isinstance(symbols, list):
                raise _Unsupported("enum without symbols")
            allowed = self.const(frozenset(s for s in symbols if isinstance(s, str)))
            lines = [f"def {fn}(v):", f"    return type(v) is str and v in {allowed}"]
        elif kind == "fixed":
            size = node.get("size")
            if type(size) is not int:
                raise _Unsupported("fixed without size")
            lines = [f"def {fn}(v):", f"    return type(v) is bytes and len(v) == {size}"]
        else:
            raise _Unsupported(f"named type {kind!r}")
        self.blocks.append("\n".join(lines))
        return fn

    def array_function(self, node: dict[str, Any]) -> str:
        fn = self._name("a")
        item = self.expr(node.get("items"), "x")
        self.blocks.append(
            "\n".join(
                [
                    f"def {fn}(v):",
                    "    if type(v) is not list:",
                    "        return False",
                    "    for x in v:",
                    f"        if not {item}:",
                    "            return False",
                    "    return True",
                ]
            )
        )
        return fn

    def map_function(self, node: dict[str, Any]) -> str:
        fn = self._name("m")
        value = self.expr(node.get("values"), "x")
        self.blocks.append(
            "\n".join(
                [
                    f"def {fn}(v):",
                    "    if type(v) is not dict:",
                    "        return False",
                    "    for k, x in v.items():",
                    f"        if type(k) is not str or not {value}:",
                    "            return False",
                    "    return True",
                ]
            )
        )
        return fn


def build_acceptor(parsed: Any, named: dict[str, Any]) -> Callable[[Any], bool] | None:
    """Generate the fast acceptor for a fastavro-parsed schema, or ``None`` if the schema uses
    something it does not model."""
    gen = _Generator(named)
    try:
        entry = gen.expr(parsed, "v")
    except (_Unsupported, RecursionError):
        return None
    source = "\n\n".join([*gen.blocks, f"def _accept(v):\n    return {entry}"])
    namespace: dict[str, Any] = {
        "__builtins__": {"type": type, "len": len, "str": str, "int": int, "float": float},
        "dict": dict,
        "list": list,
        "bytes": bytes,
        "bytearray": bytearray,
        **gen.consts,
    }
    exec(compile(source, "<memphis_fast avro acceptor>", "exec"), namespace)
    accept: Callable[[Any], bool] = namespace["_accept"]
    return accept


class AvroSchema(Schema):
    """``type == "avro"``. Accepts ``dict`` and ``list`` (sent as orjson JSON), and ``bytes``,
    ``bytearray``, ``memoryview`` and ``str`` holding JSON text (sent unchanged)."""

    __slots__ = ("_parsed", "_accept")

    def __init__(self, name: str, version: int, schema_text: str) -> None:
        super().__init__("avro", name, version)
        try:
            document = json_loads(schema_text)
        except ValueError as e:
            raise ValueError(f"invalid Avro schema: {e}") from None
        named: dict[str, Any] = {}
        try:
            self._parsed = fastavro.parse_schema(document, named)
        except Exception as e:  # fastavro raises several unrelated types here
            raise ValueError(f"invalid Avro schema: {e}") from None
        self._accept = build_acceptor(self._parsed, named)

    def _check(self, value: Any) -> str | None:
        accept = self._accept
        if accept is not None:
            try:
                if accept(value):
                    return None
            except RecursionError:
                pass
        try:
            fastavro.validate(value, self._parsed)
        except fastavro.validation.ValidationError as e:
            return str(e)
        except Exception as e:  # e.g. RecursionError, fastavro's UnknownType
            return str(e) or type(e).__name__
        return None

    def encode(self, message: Any) -> bytes:
        t = type(message)
        if t is dict or t is list or (t is not str and isinstance(message, (dict, list))):
            try:
                data = json_dumps(message)
            except TypeError as e:
                fail(str(e), message)
            reason = self._check(message)
        elif isinstance(message, (bytes, bytearray, memoryview, str)):
            if isinstance(message, str):
                try:
                    data = message.encode("utf-8")
                except UnicodeEncodeError as e:
                    fail(f"Expecting Avro format: the text is not valid UTF-8 ({e.reason})", message)
            else:
                data = bytes(message)
            try:
                value = json_loads(data)
            except ValueError as e:
                fail("Expecting Avro format: " + str(e), message, data)
            reason = self._check(value)
        else:
            fail(UNSUPPORTED, message)
        if reason is not None:
            fail(reason, message, data)
        return data  # type: ignore[no-any-return]

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        try:
            value = json_loads(data)
        except ValueError as e:
            fail_decode("Expecting Avro format: " + str(e))
        reason = self._check(value)
        if reason is not None:
            fail_decode(reason)
        return value
