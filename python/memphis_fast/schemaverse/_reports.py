"""The two messages a producer publishes when a message fails validation (docs/protocol.md §7.8).

The bodies themselves are :mod:`memphis_fast._subjects`'s; this module turns what a producer
has (a ``Headers`` object or mapping, an exception) into them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from .. import _subjects

__all__ = [
    "SCHEMAVERSE_DLS_SUBJECT",
    "NOTIFICATIONS_SUBJECT",
    "SCHEMA_FAIL_ALERT_TYPE",
    "build_schemaverse_dls_report",
    "build_schema_notification",
]

SCHEMAVERSE_DLS_SUBJECT = _subjects.SCHEMAVERSE_DLS
NOTIFICATIONS_SUBJECT = _subjects.NOTIFICATIONS
SCHEMA_FAIL_ALERT_TYPE = _subjects.SCHEMA_FAIL_ALERT_TYPE


def _header_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, Iterable):
        return " ".join(_header_value(v) for v in value)  # multi-valued: joined like the Go client
    return str(value)


def build_schemaverse_dls_report(
    *,
    internal_station_name: str,
    producer_name: str,
    connection_id: str,
    data: bytes | bytearray | memoryview,
    headers: Mapping[str, Any] | Any | None,
    validation_error: str | BaseException,
    creation_unix: int | None = None,
) -> bytes:
    """The body for ``$memphis_schemaverse_dls`` (docs/protocol.md §5.13), in memphis-py's key order.

    ``data`` is the bytes the producer would have sent (``MemphisSchemaError.payload``); it goes
    out as lower-case hex. ``headers`` are the user's headers, a mapping or an object with a
    ``headers`` mapping like memphis-py's ``Headers`` (never modified); the producer's
    ``$memphis_producedBy``/``$memphis_connectionId`` are added over them, and ``msg-id`` is not
    (memphis-py leaves it out). Pass the exception as ``validation_error`` to get memphis-py's
    text, ``str(err)`` (``"memphis: Schema validation has failed: ..."``).
    """
    if headers is not None and not isinstance(headers, Mapping):
        headers = getattr(headers, "headers", None)  # a memphis-py style Headers object
    merged = {str(k): _header_value(v) for k, v in headers.items()} if isinstance(headers, Mapping) else {}
    merged[_subjects.HEADER_PRODUCED_BY] = producer_name
    merged[_subjects.HEADER_CONNECTION_ID] = connection_id
    return _subjects.SchemaverseDlsReport(
        station_name=internal_station_name,
        producer_name=producer_name,
        connection_id=connection_id,
        data=bytes(data),
        headers=merged,
        validation_error=str(validation_error),
        creation_unix=int(time.time()) if creation_unix is None else creation_unix,
    ).to_json()


def build_schema_notification(
    *,
    station_name: str,
    producer_name: str,
    validation_error: str | BaseException,
    data: bytes | bytearray | memoryview,
) -> bytes:
    """The body for ``$memphis_notifications`` (docs/protocol.md §5.12), as memphis-py writes it:
    ``Error:`` with no space after it, and the rejected message as text in ``code`` (invalid
    UTF-8 replaced)."""
    return _subjects.Notification.schema_validation_failed(
        station_name=station_name,
        producer_name=producer_name,
        validation_error=str(validation_error),
        code=bytes(data).decode("utf-8", "replace"),
    ).to_json()
