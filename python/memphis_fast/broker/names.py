"""Memphis names: validation texts (docs/protocol.md §3.1); the internal-name mapping
(docs/protocol.md §3.2) is :mod:`memphis_fast._subjects`'s, re-exported here."""

from __future__ import annotations

import re

from .._subjects import external_name, internal_name, stream_name

__all__ = [
    "NameError_",
    "external_name",
    "internal_name",
    "kv_key",
    "stream_name",
    "validate_name",
]

_ALLOWED = re.compile(r"^[a-z0-9_.-]*$")


class NameError_(ValueError):  # noqa: N801 - "NameError" is a builtin
    """A name failed validation; ``str()`` is the broker's exact error text."""


def validate_name(name: str, obj: str) -> str:
    """Lower-case and validate ``name`` the way the broker does (docs/protocol.md §3.1).

    ``obj`` is ``Station``, ``Producer``, ``Consumer`` or ``Schema``. Returns the lower-cased name.
    """
    name = name.lower()
    if name == "":
        raise NameError_(f"{obj} name can not be empty")
    if len(name.encode("utf-8")) > 128:
        raise NameError_(f"{obj} should be under 128 characters")
    if not _ALLOWED.match(name):
        raise NameError_(f"Only alphanumeric and the '_', '-', '.' characters are allowed in {obj}")
    if name[0] in "._-" or name[-1] in "._-":
        raise NameError_(f"{obj} name can not start or end with non alphanumeric character")
    return name


_KV_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def kv_key(*parts: str) -> str:
    """A KV key from name parts; anything outside ``[A-Za-z0-9_-]`` is escaped as ``=XX``.

    KV keys cannot hold ``#``, ``$`` or empty dot-separated tokens, and schema names are not
    validated by the broker (docs/protocol.md §3.1), so every name is escaped, reversibly.
    """
    out = []
    for part in parts:
        enc = "".join(
            ch if ch in _KV_SAFE else "".join(f"={b:02X}" for b in ch.encode("utf-8")) for ch in part
        )
        out.append(enc or "=")
    return ".".join(out)
