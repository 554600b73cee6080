"""The failure-path payloads: schemaverse DLS report (§5.13) and notification (§5.12)."""

from __future__ import annotations

import json

import pytest
from schemaverse_helpers import schema_update

from memphis_fast.exceptions import MemphisSchemaError
from memphis_fast.schemaverse import (
    NOTIFICATIONS_SUBJECT,
    SCHEMAVERSE_DLS_SUBJECT,
    build_schema_notification,
    build_schemaverse_dls_report,
    compile_schema,
)


def test_subjects() -> None:
    assert SCHEMAVERSE_DLS_SUBJECT == "$memphis_schemaverse_dls"
    assert NOTIFICATIONS_SUBJECT == "$memphis_notifications"


def test_dls_report_exact_bytes() -> None:
    user_headers = {"trace": "x", "$memphis_producedBy": "spoofed"}
    body = build_schemaverse_dls_report(
        internal_station_name="orders#eu",
        producer_name="svc-a",
        connection_id="7f6d2c0e",
        data=b'{"id":"a"}\x00\xff',
        headers=user_headers,
        validation_error="memphis: Schema validation has failed: bad",
        creation_unix=1716200000,
    )
    assert body == (
        b'{"station_name":"orders#eu","producer":{"name":"svc-a","connection_id":"7f6d2c0e"},'
        b'"creation_unix":1716200000,"message":{"data":"7b226964223a2261227d00ff","headers":'
        b'{"trace":"x","$memphis_producedBy":"svc-a","$memphis_connectionId":"7f6d2c0e"}},'
        b'"validation_error":"memphis: Schema validation has failed: bad"}'
    )
    assert user_headers == {"trace": "x", "$memphis_producedBy": "spoofed"}  # not mutated (B3)


def test_dls_report_from_a_real_failure() -> None:
    schema = compile_schema(schema_update("json", json.dumps({"required": ["id"]})))
    assert schema is not None
    with pytest.raises(MemphisSchemaError) as info:
        schema.encode(bytearray(b'{"x": 1}'))
    err = info.value
    body = json.loads(
        build_schemaverse_dls_report(
            internal_station_name="s",
            producer_name="p",
            connection_id="c",
            data=err.payload,  # type: ignore[attr-defined]
            headers=None,
            validation_error=err,
        )
    )
    assert bytes.fromhex(body["message"]["data"]) == b'{"x": 1}'
    assert body["message"]["data"] == body["message"]["data"].lower()
    assert body["validation_error"] == 'memphis: Schema validation has failed: "id" is a required property'
    assert body["message"]["headers"] == {"$memphis_producedBy": "p", "$memphis_connectionId": "c"}
    assert isinstance(body["creation_unix"], int) and body["creation_unix"] > 1_700_000_000
    assert list(body) == ["station_name", "producer", "creation_unix", "message", "validation_error"]


def test_multi_valued_and_odd_headers() -> None:
    body = json.loads(
        build_schemaverse_dls_report(
            internal_station_name="s",
            producer_name="p",
            connection_id="c",
            data=memoryview(b"\x01"),
            headers={"a": ["1", "2"], "b": b"x", "c": 3},
            validation_error="e",
            creation_unix=0,
        )
    )
    assert body["message"]["headers"]["a"] == "1 2"
    assert body["message"]["headers"]["b"] == "x"
    assert body["message"]["headers"]["c"] == "3"
    assert body["message"]["data"] == "01"


def test_notification_exact_bytes() -> None:
    body = build_schema_notification(
        station_name="orders.eu",
        producer_name="svc-a",
        validation_error="memphis: Schema validation has failed: bad",
        data=b'{"id":"a"}',
    )
    assert body == (
        b'{"title":"Schema validation has failed","msg":"Station: orders.eu\\nProducer: svc-a\\n'
        b'Error:memphis: Schema validation has failed: bad","type":"schema_validation_fail_alert",'
        b'"code":"{\\"id\\":\\"a\\"}"}'
    )
    assert (
        json.loads(
            build_schema_notification(station_name="s", producer_name="p", validation_error="e", data=b"\xff")
        )["code"]
        == "\ufffd"
    )


def test_memphis_py_headers_object() -> None:
    from memphis.headers import Headers

    headers = Headers()
    headers.add("k", "v")
    body = json.loads(
        build_schemaverse_dls_report(
            internal_station_name="s",
            producer_name="p",
            connection_id="c",
            data=b"",
            headers=headers,
            validation_error="e",
        )
    )
    assert body["message"]["headers"] == {"k": "v", "$memphis_producedBy": "p", "$memphis_connectionId": "c"}
    assert headers.headers == {"k": "v"}


def test_surrogates_do_not_break_the_report() -> None:
    body = build_schemaverse_dls_report(
        internal_station_name="s",
        producer_name="p",
        connection_id="c",
        data=b"x",
        headers={"h": "\ud800"},
        validation_error="bad \udcff",
        creation_unix=1,
    )
    assert json.loads(body)["validation_error"] == "bad \udcff"
    note = build_schema_notification(station_name="s", producer_name="p", validation_error="\ud800", data=b"")
    assert json.loads(note)["msg"].endswith("Error:\ud800")
