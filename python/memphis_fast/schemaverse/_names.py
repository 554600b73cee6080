"""Client-side checks for ``create_schema``: the schema name, the type, reading the file."""

from __future__ import annotations

import asyncio
import os
import re

from ..exceptions import MemphisError
from ._compile import SCHEMA_TYPES

__all__ = ["validate_schema_name", "validate_schema_type", "load_schema_file"]

_NAME_RE = re.compile(r"[a-z0-9_.-]*")


def validate_schema_name(name: object) -> str:
    """Check a schema name as memphis-py does (the broker does not check schema names;
    docs/protocol.md §3.1), with its texts. Returns the name; raises :class:`MemphisError`."""
    if not isinstance(name, str):
        raise MemphisError(f"Schema name must be a string, not {type(name).__name__}")
    if len(name) == 0:
        raise MemphisError("Schema name cannot be empty")
    if len(name) > 128:
        raise MemphisError("Schema name should be under 128 characters")
    if _NAME_RE.fullmatch(name) is None:
        raise MemphisError(
            "Only alphanumeric and the '_', '-', '.' characters are allowed in the schema name"
        )
    if not name[0].isalnum() or not name[-1].isalnum():
        raise MemphisError("Schema name cannot start or end with a non-alphanumeric character")
    return name


def validate_schema_type(schema_type: object) -> str:
    """``json``, ``graphql``, ``protobuf`` or ``avro`` (exact, as memphis-py compares). Raises
    :class:`MemphisError` where memphis-py raised ``TypeError`` (defect B16)."""
    if not isinstance(schema_type, str) or schema_type not in SCHEMA_TYPES:
        raise MemphisError(
            f"schema type not supported: {schema_type!r} (expected one of {', '.join(SCHEMA_TYPES)})"
        )
    return schema_type


def _read(path: str | os.PathLike[str]) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


async def load_schema_file(path: str | os.PathLike[str]) -> str:
    """Read a schema file as UTF-8 text in a worker thread, so the event loop never blocks on
    disk. Any failure is a :class:`MemphisError` naming the path."""
    if not isinstance(path, (str, os.PathLike)):
        raise MemphisError(f"schema path must be a string or a path, not {type(path).__name__}")
    try:
        return await asyncio.to_thread(_read, path)
    except FileNotFoundError:
        raise MemphisError(f"schema file not found: {os.fsdecode(path)}") from None
    except IsADirectoryError:
        raise MemphisError(f"schema path is a directory: {os.fsdecode(path)}") from None
    except UnicodeDecodeError as e:
        raise MemphisError(f"schema file {os.fsdecode(path)} is not UTF-8 text: {e.reason}") from None
    except OSError as e:
        raise MemphisError(f"cannot read schema file {os.fsdecode(path)}: {e.strerror or e}") from None
