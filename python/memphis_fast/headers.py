"""Message headers (``memphis.headers.Headers``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._subjects import RESERVED_HEADER_PREFIX as _RESERVED
from .exceptions import MemphisHeaderError

__all__ = ["Headers"]


class Headers:
    """User headers for a produced message.

    ``add`` refuses keys starting with ``$memphis`` (those are set by the client). A producer
    never modifies a ``Headers`` object it is given (memphis-py wrote ``$memphis_*`` and
    ``msg-id`` into it, defect B3), so one object can be reused for many messages.
    """

    __slots__ = ("headers",)

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}

    def add(self, key: str, value: str) -> None:
        """Add a header; raises :class:`MemphisHeaderError` for a ``$memphis`` key or a key or
        value that is not a ``str`` (memphis-py failed on those when producing; ``None``,
        numbers and bytes were never turned into text silently)."""
        _check_header(key, value)
        self.headers[key] = value

    def __len__(self) -> int:
        return len(self.headers)

    def __iter__(self) -> Iterator[str]:
        return iter(self.headers)

    def __repr__(self) -> str:
        return f"Headers({self.headers!r})"


def _check_header(key: object, value: object) -> None:
    if not isinstance(key, str):
        raise MemphisHeaderError(f"header keys must be str, not {type(key).__name__} {key!r}")
    if key.startswith(_RESERVED):
        raise MemphisHeaderError("Keys in headers should not start with $memphis")
    if key == "" or any(c in key for c in ": \r\n"):
        raise MemphisHeaderError(f"header key {key!r} is not valid (empty, or contains ':', a space or a newline)")
    if not isinstance(value, str):
        raise MemphisHeaderError(
            f"the value of header {key!r} must be a str, not {type(value).__name__} {value!r}"
        )
    if "\r" in value or "\n" in value:
        raise MemphisHeaderError(f"the value of header {key!r} contains a newline")


def user_headers(headers: Headers | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The user's headers as a dict to encode (never the caller's own object); ``None`` if
    empty. Accepts :class:`Headers` or any mapping (memphis-py's README shows dicts, B18)."""
    if headers is None:
        return None
    if isinstance(headers, Headers):
        src: Mapping[str, Any] = headers.headers
    elif isinstance(headers, Mapping):
        src = headers
    else:
        raise MemphisHeaderError(
            f"headers must be a memphis Headers object or a dict, not {type(headers).__name__}"
        )
    for k, v in src.items():
        _check_header(k, v)
    if not src:
        return None
    return dict(src)
