"""Small helpers with memphis-py's names (``memphis.utils``)."""

from __future__ import annotations

import logging
import secrets

from ._subjects import internal_name

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
