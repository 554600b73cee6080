"""JSON Schema stations, validated with jsonschema-rs.

Draft: the ``$schema`` keyword when present, else Draft 2020-12, as memphis-py's
``jsonschema.validate`` does; an unknown ``$schema`` URI also falls back to 2020-12 there, and
here. ``format`` is an annotation, not an assertion (memphis-py passes no format checker), and
``$ref`` never goes to the network.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from ._base import UNSUPPORTED, Schema, fail, fail_decode, json_dumps, json_loads

__all__ = ["JsonSchema", "compile_json_validator", "error_reason"]


def compile_json_validator(schema_text: str) -> jsonschema_rs.Validator:
    """Parse and compile a JSON Schema document. Raises ``ValueError`` with a readable reason."""
    try:
        document = json_loads(schema_text)
    except ValueError as e:
        raise ValueError(f"invalid JSON schema: {e}") from None
    options: dict[str, Any] = {"validate_formats": False, "offline": True}
    try:
        try:
            return jsonschema_rs.validator_for(document, **options)
        except TypeError as e:
            if "offline" not in str(e):
                raise
            # jsonschema-rs before "offline" existed: it resolves remote $ref on its own.
            del options["offline"]
            return jsonschema_rs.validator_for(document, **options)
    except jsonschema_rs.ValidationError as e:
        if isinstance(document, dict) and "Unknown meta-schema" in e.message:
            try:
                return jsonschema_rs.Draft202012Validator(document, **options)
            except jsonschema_rs.ValidationError as e2:
                e = e2
        raise ValueError(f"invalid JSON schema: {error_reason(e)}") from None
    except (ValueError, TypeError) as e:
        raise ValueError(f"invalid JSON schema: {e}") from None


def _pointer(path: list[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def error_reason(err: jsonschema_rs.ValidationError) -> str:
    """The validator's one-line reason, with the JSON pointer of the failing value if not the root."""
    path = err.instance_path
    return f"{err.message} (at {_pointer(path)})" if path else err.message


class JsonSchema(Schema):
    """``type == "json"``. Accepts ``dict`` and ``list`` (sent as orjson JSON), and ``bytes``,
    ``bytearray``, ``memoryview`` and ``str`` holding JSON text (sent unchanged)."""

    __slots__ = ("_validate", "_is_valid")

    def __init__(self, name: str, version: int, schema_text: str) -> None:
        super().__init__("json", name, version)
        validator = compile_json_validator(schema_text)
        self._validate = validator.validate
        self._is_valid = validator.is_valid

    def encode(self, message: Any) -> bytes:
        t = type(message)
        if t is dict or t is list:
            return self._encode_object(message)
        if t is bytes:
            self._check_text(message, message)
            return message  # type: ignore[no-any-return]
        if t is bytearray or t is memoryview:
            data = bytes(message)
            self._check_text(data, data)
            return data
        if t is str:
            data = _encode_text(message)
            self._check_text(data, data)
            return data
        if isinstance(message, (dict, list)):
            return self._encode_object(message)
        if isinstance(message, (bytes, bytearray, memoryview)):
            data = bytes(message)
            self._check_text(data, data)
            return data
        if isinstance(message, str):
            data = _encode_text(message)
            self._check_text(data, data)
            return data
        fail(UNSUPPORTED, message)

    def _encode_object(self, message: Any) -> bytes:
        try:
            data = json_dumps(message)
        except TypeError as e:
            fail(str(e), message)
        # Validate the object itself (no re-parse): for JSON-native values it is what the wire
        # bytes parse back to. Where the two could differ -- types jsonschema-rs cannot read,
        # NaN/Infinity (orjson writes null) -- or on a failure, the wire form decides.
        try:
            if b"null" not in data and self._is_valid(message):
                return data
        except (ValueError, TypeError, OverflowError):
            pass
        self._check_text(data, data)
        return data

    def _check_text(self, data: bytes, payload: bytes) -> Any:
        try:
            value = json_loads(data)
        except ValueError as e:
            fail("Expecting Json format: " + str(e), None, payload)
        try:
            self._validate(value)
        except jsonschema_rs.ValidationError as e:
            fail(error_reason(e), None, payload)
        except (ValueError, TypeError, OverflowError) as e:
            fail(str(e), None, payload)
        return value

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        try:
            value = json_loads(data)
        except ValueError as e:
            fail_decode("Expecting Json format: " + str(e))
        try:
            self._validate(value)
        except jsonschema_rs.ValidationError as e:
            fail_decode(error_reason(e))
        except (ValueError, TypeError, OverflowError) as e:
            fail_decode(str(e))
        return value


def _encode_text(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        fail(f"Expecting Json format: the text is not valid UTF-8 ({e.reason})", text)
