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
        """Add a header; raises :class:`MemphisHeaderError` for a ``$memphis`` key."""
        key = str(key)
        if key.startswith(_RESERVED):
            raise MemphisHeaderError("Keys in headers should not start with $memphis")
        self.headers[key] = str(value)

    def __len__(self) -> int:
        return len(self.headers)

    def __iter__(self) -> Iterator[str]:
        return iter(self.headers)

    def __repr__(self) -> str:
        return f"Headers({self.headers!r})"


def user_headers(headers: Headers | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The user's headers as a dict to encode (never the caller's own object); ``None`` if
    empty. Accepts :class:`Headers` or any mapping (memphis-py's README shows dicts, B18)."""
    if headers is None:
        return None
    if isinstance(headers, Headers):
        src: Mapping[str, Any] = headers.headers
    elif isinstance(headers, Mapping):
        src = headers
        for k in src:
            if str(k).startswith(_RESERVED):
                raise MemphisHeaderError("Keys in headers should not start with $memphis")
    else:
        raise MemphisHeaderError(
            f"headers must be a memphis Headers object or a dict, not {type(headers).__name__}"
        )
    if not src:
        return None
    return dict(src)
