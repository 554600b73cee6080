"""Enumerations of the public API (same names and values as ``memphis.types`` in memphis-py)."""

from enum import Enum

__all__ = ["Retention", "Storage"]


class Retention(Enum):
    """How a station decides which messages to keep; the value is what goes on the wire."""

    MAX_MESSAGE_AGE_SECONDS = "message_age_sec"
    MESSAGES = "messages"
    BYTES = "bytes"
    ACK_BASED = "ack_based"


class Storage(Enum):
    """Where a station stores its messages; the value is what goes on the wire."""

    DISK = "file"
    MEMORY = "memory"
