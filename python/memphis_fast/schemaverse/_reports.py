"""The two messages a producer publishes when a message fails validation (spec §7.8)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

__all__ = [
    "SCHEMAVERSE_DLS_SUBJECT",
    "NOTIFICATIONS_SUBJECT",
    "SCHEMA_FAIL_ALERT_TYPE",
    "build_schemaverse_dls_report",
    "build_schema_notification",
]

SCHEMAVERSE_DLS_SUBJECT = "$memphis_schemaverse_dls"
NOTIFICATIONS_SUBJECT = "$memphis_notifications"
SCHEMA_FAIL_ALERT_TYPE = "schema_validation_fail_alert"
_NOTIFICATION_TITLE = "Schema validation has failed"


def _dumps(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:
        # Lone surrogates (say, in an error text quoting the rejected value): orjson refuses
        # them; the standard library escapes them, and a report is better than none.
        return json.dumps(body, separators=(",", ":")).encode("ascii")


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
    """The body for ``$memphis_schemaverse_dls`` (§5.13), in memphis-py's key order.

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
    merged["$memphis_producedBy"] = producer_name
    merged["$memphis_connectionId"] = connection_id
    return _dumps(
        {
            "station_name": internal_station_name,
            "producer": {"name": producer_name, "connection_id": connection_id},
            "creation_unix": int(time.time()) if creation_unix is None else creation_unix,
            "message": {"data": bytes(data).hex(), "headers": merged},
            "validation_error": str(validation_error),
        }
    )


def build_schema_notification(
    *,
    station_name: str,
    producer_name: str,
    validation_error: str | BaseException,
    data: bytes | bytearray | memoryview,
) -> bytes:
    """The body for ``$memphis_notifications`` (§5.12), as memphis-py writes it: ``Error:`` with
    no space after it, and the rejected message as text in ``code`` (invalid UTF-8 replaced)."""
    return _dumps(
        {
            "title": _NOTIFICATION_TITLE,
            "msg": f"Station: {station_name}\nProducer: {producer_name}\nError:{validation_error}",
            "type": SCHEMA_FAIL_ALERT_TYPE,
            "code": bytes(data).decode("utf-8", "replace"),
        }
    )
