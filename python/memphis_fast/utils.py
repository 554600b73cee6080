"""Small helpers with memphis-py's names (``memphis.utils``)."""

from __future__ import annotations

import logging
import secrets

from ._subjects import internal_name
from .exceptions import MemphisArgumentError, MemphisArgumentTypeError

__all__ = ["get_internal_name", "random_bytes", "default_error_handler"]

log = logging.getLogger("memphis_fast")


def get_internal_name(name: str) -> str:
    """The broker's internal form of a station/group name: lower-case, ``.`` -> ``#``
    (memphis-py's name for :func:`memphis_fast._subjects.internal_name`)."""
    return internal_name(name)


def random_bytes(amount: int) -> str:
    """``amount`` random lower-case hex characters."""
    return secrets.token_hex((amount + 1) // 2)[:amount]


def default_error_handler(e: BaseException) -> None:
    """The default consumer error handler: log it (memphis-py printed it)."""
    log.error("memphis consumer error: %s", e)


# -- argument checks (issue 11: every bad argument is a MemphisError before anything is sent) --
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")


def _tname(value: object) -> str:
    return type(value).__name__


def check_int(
    arg: str, value: object, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """``value`` as an ``int`` (not a bool) within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MemphisArgumentTypeError(f"{arg} must be an int, not {_tname(value)} {value!r}")
    if minimum is not None and value < minimum:
        raise MemphisArgumentError(f"{arg} must be >= {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise MemphisArgumentError(f"{arg} must be <= {maximum}, not {value}")
    return value


def check_seconds(arg: str, value: object, *, positive: bool = True) -> float:
    """A duration in seconds: an ``int`` or ``float`` (not a bool), finite, > 0 (or >= 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MemphisArgumentTypeError(f"{arg} must be a number of seconds, not {_tname(value)} {value!r}")
    if value != value or value in (float("inf"), float("-inf")):
        raise MemphisArgumentError(f"{arg} must be a finite number of seconds, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise MemphisArgumentError(f"{arg} must be {'> 0' if positive else '>= 0'} seconds, not {value!r}")
    return float(value)


def check_str(arg: str, value: object, *, optional: bool = False, empty: bool = True) -> str | None:
    """A ``str`` (``None`` too when ``optional``; ``""`` only when ``empty``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        allowed = "a str or None" if optional else "a str"
        raise MemphisArgumentTypeError(f"{arg} must be {allowed}, not {_tname(value)} {value!r}")
    if not empty and value == "":
        raise MemphisArgumentError(f"{arg} can not be empty")
    return value


def check_bool(arg: str, value: object, *, optional: bool = False) -> bool | None:
    """A ``bool`` (``None`` too when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise MemphisArgumentTypeError(f"{arg} must be True or False, not {_tname(value)} {value!r}")
    return value


def check_callable(arg: str, value: object, *, optional: bool = True) -> None:
    """A callable (or ``None`` when ``optional``)."""
    if value is None and optional:
        return
    if not callable(value):
        allowed = "a callable or None" if optional else "a callable"
        raise MemphisArgumentTypeError(f"{arg} must be {allowed}, not {_tname(value)} {value!r}")


def check_name(arg: str, value: object, what: str) -> str:
    """A Memphis object name (station, producer, consumer, group) as the broker accepts it:
    letters, digits, ``_ - .`` (case-insensitive: names are lower-cased), at most 128
    characters, starting and ending with a letter or digit (docs/protocol.md §3.1), with the
    broker's texts plus the argument. Checked here so that a bad name never reaches a subject
    (``$memphis_schema_updates_<name>``). ``what``: ``Station``, ``Producer``, ``Consumer``..."""
    if not isinstance(value, str):
        raise MemphisArgumentTypeError(f"{arg} must be a str, not {_tname(value)} {value!r}")
    low = value.lower()
    where = f" ({arg}={value!r})"
    if low == "":
        raise MemphisArgumentError(f"{what} name can not be empty{where}")
    if len(low.encode("utf-8")) > 128:
        raise MemphisArgumentError(f"{what} should be under 128 characters{where}")
    if not _NAME_CHARS.issuperset(low):
        raise MemphisArgumentError(f"Only alphanumeric and the '_', '-', '.' characters are allowed in {what}{where}")
    if low[0] in "._-" or low[-1] in "._-":
        raise MemphisArgumentError(f"{what} name can not start or end with non alphanumeric character{where}")
    return value
