"""memphis_fast._subjects: the wire names and bodies both the client and the local broker use.

The expected shapes are the examples of docs/protocol.md §3.2 and §5 written out here, so a
builder that drops, renames or reorders a key fails. The byte-exact tests pin the encodings the
client and the broker sent before this module existed (nothing changes on the wire).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from memphis_fast import _subjects as s
from memphis_fast import utils
from memphis_fast.broker import names
from memphis_fast.broker.base import ReplyError, Request

UUID = "7f6d2c0e-9a51-4c1e-8d7e-0a3f0c5b2e11"
APP = "0b9c4c8e-5f7a-4d2b-a0de-3d5a6f1e2c77"
NAMES = ["Orders.EU", "orders#eu", "a.b.c", "ABC", "x", "", "Billing.Team", "dots..twice", "ünï.Cödé"]


# -- names (docs/protocol.md §3.2) ----------------------------------------------------------------


def test_internal_name() -> None:
    assert s.internal_name("Orders.EU") == "orders#eu"
    assert s.internal_name("a.b.c") == "a#b#c"
    assert s.internal_name("plain") == "plain"
    for n in NAMES:
        assert s.internal_name(s.internal_name(n)) == s.internal_name(n)  # idempotent
        assert "." not in s.internal_name(n)
        if "#" not in n:  # names with '#' are refused by the broker (§3.1): not reversible
            assert s.external_name(s.internal_name(n)) == n.lower()


def test_internal_name_has_one_definition() -> None:
    assert names.internal_name is s.internal_name
    assert names.external_name is s.external_name
    assert names.stream_name is s.stream_name
    for n in NAMES:
        assert utils.get_internal_name(n) == s.internal_name(n)


def test_bench_runner_copy_matches() -> None:
    """The bench runners cannot import memphis_fast (they are measured processes): their one
    copy must stay equal to the real one."""
    import importlib.util

    path = Path(s.__file__).parent / "bench" / "runner_common.py"
    spec = importlib.util.spec_from_file_location("_runner_common_copy", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for n in NAMES:
        assert module.internal_name(n) == s.internal_name(n)
    assert module.stream_names("Orders.EU", 3) == s.station_streams("Orders.EU", [1, 2, 3])
    assert list(module.memphis_headers("p", "c")) == [s.HEADER_PRODUCED_BY, s.HEADER_CONNECTION_ID]


def test_worked_example() -> None:
    """docs/protocol.md §3.2: station Orders.EU, 3 partitions, group Billing.Team."""
    assert s.station_streams("Orders.EU", [1, 2, 3]) == ["orders#eu$1", "orders#eu$2", "orders#eu$3"]
    assert s.final_subject(s.stream_name("Orders.EU", 2)) == "orders#eu$2.final"
    assert s.durable_name("Billing.Team") == "billing#team"
    assert s.dls_subject("Orders.EU", "Billing.Team") == "$memphis_dls_orders#eu.billing#team"
    assert s.legacy_dls_subject("orders#eu", "billing#team") == "$memphis_dls_orders#eu_billing#team"
    assert s.schema_updates_subject("Orders.EU") == "$memphis_schema_updates_orders#eu"
    assert s.functions_updates_subject("orders#eu") == "$memphis_functions_updates_orders#eu"
    assert s.stream_subjects("orders#eu$1") == "orders#eu$1.>"
    assert s.functions_subject("orders#eu$2", 7) == "orders#eu$2.functions.7"


def test_legacy_streams() -> None:
    assert s.stream_name("Legacy", 0) == "legacy"
    assert s.station_streams("Legacy", None) == ["legacy"]
    assert s.station_streams("Legacy", []) == ["legacy"]


def test_partition_of_stream() -> None:
    assert s.partition_of_stream("orders#eu$2") == ("orders#eu", 2)
    assert s.partition_of_stream("a$b$10") == ("a$b", 10)
    assert s.partition_of_stream("legacy") is None
    assert s.partition_of_stream("x$y") is None
    assert s.partition_of_stream("$memphis_dls_unacked") is None


# -- subjects ------------------------------------------------------------------------------------


def test_request_subjects_and_queue_groups() -> None:
    """docs/protocol.md §4, §5.0."""
    assert s.REQUEST_SUBJECTS == (
        "$memphis_station_creations",
        "$memphis_station_destructions",
        "$memphis_producer_creations",
        "$memphis_producer_destructions",
        "$memphis_consumer_creations",
        "$memphis_consumer_destructions",
        "$memphis_schema_creations",
        "$memphis_schema_attachments",
        "$memphis_schema_detachments",
    )
    assert s.request_queue_group(s.STATION_CREATIONS) == "memphis_station_creations_listeners_group"
    assert s.request_queue_group(s.SCHEMA_DETACHMENTS) == "memphis_schema_detachments_listeners_group"
    assert set(s.NOTIFICATION_SUBJECTS) == {
        "$memphis_schemaverse_dls",
        "$memphis_nacked_dls",
        "$memphis_pm_acks",
        "$memphis_notifications",
    }
    assert s.notification_queue_group(s.PM_ACKS) == "$memphis_pm_acks_group"
    assert s.SDK_CLIENTS_UPDATES == "$memphis_sdk_clients_updates"
    assert s.configurations_update_subject("c1") == "$memphis_configurations_updates.init.c1"
    assert s.admin_subject("ping") == "$memphis_fast_admin.ping"


def test_request_classes_name_their_subject() -> None:
    assert s.StationCreation.subject == s.STATION_CREATIONS
    assert s.StationDestruction.subject == s.STATION_DESTRUCTIONS
    assert s.ProducerCreation.subject == s.PRODUCER_CREATIONS
    assert s.ConsumerCreation.subject == s.CONSUMER_CREATIONS
    assert s.SchemaCreation.subject == s.SCHEMA_CREATIONS
    assert s.SchemaAttachment.subject == s.SCHEMA_ATTACHMENTS
    assert s.SchemaDetachment.subject == s.SCHEMA_DETACHMENTS
    assert s.SchemaverseDlsReport.subject == s.SCHEMAVERSE_DLS
    assert s.Notification.subject == s.NOTIFICATIONS
    assert s.NackedDls.subject == s.NACKED_DLS
    assert s.PmAck.subject == s.PM_ACKS


def test_jetstream_api_subjects() -> None:
    assert s.js_consumer_msg_next("orders#eu$1", "cg") == "$JS.API.CONSUMER.MSG.NEXT.orders#eu$1.cg"
    assert s.js_consumer_info("orders#eu$1", "cg") == "$JS.API.CONSUMER.INFO.orders#eu$1.cg"
    assert s.js_consumer_create("st$1", "cg") == "$JS.API.CONSUMER.DURABLE.CREATE.st$1.cg"
    assert s.js_consumer_delete("st$1", "cg") == "$JS.API.CONSUMER.DELETE.st$1.cg"
    assert s.js_stream_info("st$1") == "$JS.API.STREAM.INFO.st$1"
    assert s.js_stream_create("st$1") == "$JS.API.STREAM.CREATE.st$1"
    assert s.js_stream_update("st$1") == "$JS.API.STREAM.UPDATE.st$1"
    assert s.js_stream_delete("st$1") == "$JS.API.STREAM.DELETE.st$1"
    assert s.js_stream_msg_get("st$1") == "$JS.API.STREAM.MSG.GET.st$1"
    assert s.JS_STREAM_NAMES == "$JS.API.STREAM.NAMES"
    for subject in (s.js_stream_info("x"), s.js_consumer_info("x", "y"), s.JS_STREAM_NAMES):
        assert subject.startswith(s.JS_API_PREFIX)


# -- request bodies: exactly the JSON of docs/protocol.md §5 ----------------------------------------


def _keys(body: bytes) -> list[str]:
    return list(orjson.loads(body))


def test_station_creation_body() -> None:
    """§5.1, with Python's capitalised ``Schemaverse`` key; byte-identical to what
    ``Memphis.station`` sent before (orjson of this dict, in this order)."""
    req = s.StationCreation(
        name="Orders.EU", username="root", retention_type="messages", retention_value=100000,
        partitions_number=3,
    )  # fmt: skip
    expected = {
        "name": "Orders.EU",
        "retention_type": "messages",
        "retention_value": 100000,
        "storage_type": "file",
        "replicas": 1,
        "idempotency_window_in_ms": 120000,
        "schema_name": "",
        "dls_configuration": {"poison": True, "Schemaverse": True},
        "username": "root",
        "tiered_storage_enabled": False,
        "partitions_number": 3,
        "dls_station": "",
    }
    assert req.to_json() == orjson.dumps(expected)


def test_station_destruction_body() -> None:
    req = s.StationDestruction(station_name="orders.eu", username="root")
    assert req.to_json() == b'{"station_name":"orders.eu","username":"root"}'


def test_producer_creation_body() -> None:
    """§5.3: every key, the spec's order, req_version 4, sdk_lang python."""
    req = s.ProducerCreation(name="svc-a", station_name="Orders.EU", connection_id=UUID, username="root", app_id=APP)
    expected = {
        "name": "svc-a",
        "station_name": "Orders.EU",
        "connection_id": UUID,
        "producer_type": "application",
        "req_version": 4,
        "username": "root",
        "app_id": APP,
        "sdk_lang": "python",
    }
    assert req.to_json() == orjson.dumps(expected)


def test_consumer_creation_body() -> None:
    """§5.5."""
    req = s.ConsumerCreation(
        name="w1", station_name="Orders.EU", connection_id=UUID, consumers_group="Billing.Team",
        username="root", app_id=APP,
    )  # fmt: skip
    expected = {
        "name": "w1",
        "station_name": "Orders.EU",
        "connection_id": UUID,
        "consumer_type": "application",
        "consumers_group": "Billing.Team",
        "max_ack_time_ms": 30000,
        "max_msg_deliveries": 2,
        "start_consume_from_sequence": 1,
        "last_messages": -1,
        "req_version": 4,
        "username": "root",
        "app_id": APP,
        "sdk_lang": "python",
    }
    assert req.to_json() == orjson.dumps(expected)


def test_destruction_bodies() -> None:
    """§5.4 and §5.6 share one shape, req_version 1."""
    assert s.ProducerDestruction is s.ConsumerDestruction
    req = s.ProducerDestruction(name="svc-a", station_name="Orders.EU", username="root", connection_id=UUID)
    assert req.to_json() == orjson.dumps(
        {"name": "svc-a", "station_name": "Orders.EU", "username": "root", "connection_id": UUID, "req_version": 1}
    )


def test_schema_request_bodies() -> None:
    """§5.7 - §5.9."""
    content = '{"type": "object", "required": ["id"]}'
    req = s.SchemaCreation(name="order-v", schema_type="json", created_by_username="root", schema_content=content)
    assert req.to_json() == orjson.dumps(
        {
            "name": "order-v",
            "type": "json",
            "created_by_username": "root",
            "schema_content": content,
            "message_struct_name": "",
        }
    )
    attach = s.SchemaAttachment(name="order-v", station_name="orders.eu", username="root")
    assert attach.to_json() == b'{"name":"order-v","station_name":"orders.eu","username":"root"}'
    detach = s.SchemaDetachment(station_name="orders.eu", username="root")
    assert detach.to_json() == b'{"station_name":"orders.eu","username":"root"}'


def test_schemaverse_dls_report_body() -> None:
    """§5.13: internal station name, hex data, Python's key order, no ``size``."""
    report = s.SchemaverseDlsReport(
        station_name="orders#eu", producer_name="svc-a", connection_id=UUID, data=b'{"id":"a"}',
        headers={"trace": "x", "$memphis_producedBy": "svc-a", "$memphis_connectionId": UUID},
        validation_error="bad", creation_unix=1716200000,
    )  # fmt: skip
    assert orjson.loads(report.to_json()) == {
        "station_name": "orders#eu",
        "producer": {"name": "svc-a", "connection_id": UUID},
        "creation_unix": 1716200000,
        "message": {
            "data": "7b226964223a2261227d",
            "headers": {"trace": "x", "$memphis_producedBy": "svc-a", "$memphis_connectionId": UUID},
        },
        "validation_error": "bad",
    }
    assert _keys(report.to_json()) == ["station_name", "producer", "creation_unix", "message", "validation_error"]
    # partition_number is accepted by the broker, sent by no client: only written when set
    assert "partition_number" not in orjson.loads(report.to_json())


def test_notification_body() -> None:
    """§5.12: ``Error:`` without a space, the rejected message in ``code``."""
    note = s.Notification.schema_validation_failed("orders.eu", "svc-a", "boom", '{"x":1}')
    assert note.to_json() == orjson.dumps(
        {
            "title": "Schema validation has failed",
            "msg": "Station: orders.eu\nProducer: svc-a\nError:boom",
            "type": "schema_validation_fail_alert",
            "code": '{"x":1}',
        }
    )


def test_nacked_dls_and_pm_ack_bodies() -> None:
    """§5.14, §5.15."""
    nack = s.NackedDls(station_name="orders#eu", error="bad payload", partition=2, cg_name="billing.team", seq=42)
    assert nack.to_json() == (
        b'{"station_name":"orders#eu","error":"bad payload","partition":2,"cg_name":"billing.team","seq":42}'
    )
    assert s.PmAck(id=7, cg_name="billing.team").to_json() == b'{"id":7,"cg_name":"billing.team"}'
    assert s.PmAck.from_headers({s.HEADER_PM_ID: "7", s.HEADER_PM_CG_NAME: "g"}) == s.PmAck(7, "g")
    assert s.PmAck.from_headers({s.HEADER_PM_ID: "7"}) is None
    with pytest.raises(ValueError):
        s.PmAck.from_headers({s.HEADER_PM_ID: "seven", s.HEADER_PM_CG_NAME: "g"})


# -- round trips: what the client builds, the broker reads back --------------------------------------

REQUESTS: list[Any] = [
    s.StationCreation(
        name="Orders.EU", username="root", retention_type="bytes", retention_value=10, storage_type="memory",
        replicas=3, idempotency_window_in_ms=500, schema_name="sc", dls_poison=False, dls_schemaverse=False,
        tiered_storage_enabled=True, partitions_number=4, dls_station="dead",
    ),  # fmt: skip
    s.StationDestruction(station_name="a", username="u"),
    s.ProducerCreation(name="p", station_name="st", connection_id=UUID, username="u", app_id=APP),
    s.ConsumerCreation(
        name="c", station_name="st", connection_id=UUID, consumers_group="g", username="u", app_id=APP,
        max_ack_time_ms=5, max_msg_deliveries=3, start_consume_from_sequence=9, last_messages=-1,
    ),  # fmt: skip
    s.ClientDestruction(name="p", station_name="st", username="u", connection_id=UUID),
    s.SchemaCreation(name="sc", schema_type="avro", created_by_username="u", schema_content="{}"),
    s.SchemaAttachment(name="sc", station_name="st", username="u"),
    s.SchemaDetachment(station_name="st", username="u"),
    s.SchemaverseDlsReport(
        station_name="st", producer_name="p", connection_id=UUID, data=b"\x00\xffraw",
        headers={"k": "v"}, validation_error="e", creation_unix=12, partition_number=2,
    ),  # fmt: skip
    s.Notification(title="t", msg="m", type="x", code="c"),
    s.NackedDls(station_name="st", error="e", partition=1, cg_name="g", seq=5),
    s.PmAck(id=3, cg_name="g"),
]


@pytest.mark.parametrize("req", REQUESTS, ids=lambda r: type(r).__name__)
def test_request_round_trip(req: Any) -> None:
    assert type(req).from_json(req.to_json()) == req
    # the broker reads them through its own Request (errors become reply texts)
    assert type(req).from_fields(Request(req.to_json())) == req


def test_dls_flags_are_read_case_insensitively() -> None:
    """Python sends ``Schemaverse``, Go ``schemaverse`` (§5.1); both reach the broker."""
    for key in ("Schemaverse", "schemaverse", "SCHEMAVERSE"):
        body = json.dumps({"dls_configuration": {"poison": True, key: False}}).encode()
        assert s.StationCreation.from_json(body).dls_schemaverse is False
    go_note = b'{"Title": "t", "Msg": "m", "Type": "x", "Code": "c"}'  # Go: no JSON tags (§5.12)
    assert s.Notification.from_json(go_note) == s.Notification(title="t", msg="m", type="x", code="c")


def test_missing_fields_take_the_broker_defaults() -> None:
    station = s.StationCreation.from_json(b"{}")
    assert station.partitions_number == 0  # "you are using an old SDK"
    assert station.dls_poison and station.dls_schemaverse
    assert station.replicas == 1
    consumer = s.ConsumerCreation.from_json(b"{}")
    assert (consumer.start_consume_from_sequence, consumer.last_messages) == (1, -1)
    assert consumer.req_version == 0 and consumer.consumer_type == ""
    assert s.ProducerCreation.from_json(b"").req_version == 0


def test_wrong_types_are_errors() -> None:
    with pytest.raises(s.BodyError, match="field partitions_number must be an integer"):
        s.StationCreation.from_json(b'{"partitions_number": "3"}')
    with pytest.raises(s.BodyError, match="field dls_configuration must be an object"):
        s.StationCreation.from_json(b'{"dls_configuration": []}')
    with pytest.raises(s.BodyError, match="expected a JSON object"):
        s.PmAck.from_json(b"[1]")
    with pytest.raises(s.BodyError, match="invalid request"):
        s.NackedDls.from_json(b"{nope")
    # the broker's reader raises its reply error instead, with the same text
    with pytest.raises(ReplyError, match="^invalid request: field seq must be an integer$"):
        s.NackedDls.from_fields(Request(b'{"seq": 1.5}'))


def test_schemaverse_report_tolerates_what_the_broker_tolerates() -> None:
    body = b'{"station_name": "st", "message": {"data": "not hex", "headers": ["x"]}, "creation_unix": "soon"}'
    report = s.SchemaverseDlsReport.from_json(body)
    assert report.data == b"not hex"
    assert report.headers == {}
    assert report.creation_unix == 0
    assert report.producer_name == ""


# -- replies and broadcasts (broker -> client) ---------------------------------------------------

SCHEMA = s.SchemaInit(
    schema_name="order-v", type="json", version_number=3, schema_content='{"type":"object"}'
)
EMPTY_INIT = {
    "schema_name": "",
    "active_version": {"version_number": 0, "descriptor": "", "schema_content": "", "message_struct_name": ""},
    "type": "",
}


def test_producer_creation_reply_shape() -> None:
    """§5.3: all keys always present, functions an object; the broker's json.dumps encoding."""
    body = s.producer_creation_reply(
        schema_update=s.EMPTY_SCHEMA, partitions=[1, 2, 3], schemaverse_to_dls=True,
        send_notification=False, station_version=2,
    )  # fmt: skip
    expected = {
        "schema_update": EMPTY_INIT,
        "partitions_update": {"partitions_list": [1, 2, 3]},
        "schemaverse_to_dls": True,
        "send_notification": False,
        "station_version": 2,
        "station_partitions_first_functions": {},
        "error": "",
    }
    assert body == json.dumps(expected).encode()
    error = json.loads(s.producer_creation_error("User x does not exist"))
    assert error == {
        **expected,
        "partitions_update": {"partitions_list": None},
        "schemaverse_to_dls": False,
        "station_version": 0,
        "error": "User x does not exist",
    }
    assert list(error) == list(expected)


def test_consumer_and_schema_replies_shape() -> None:
    """§5.5, §5.7."""
    body = s.consumer_creation_reply(schema_update=SCHEMA, partitions=[1])
    assert json.loads(body) == {
        "schema_update": SCHEMA.to_dict(),
        "partitions_update": {"partitions_list": [1]},
        "error": "",
    }
    assert s.schema_creation_reply() == b'{"error": ""}'
    assert s.schema_creation_reply("x already exist with type - avro") == b'{"error": "x already exist with type - avro"}'


def test_creation_reply_round_trip() -> None:
    body = s.producer_creation_reply(
        schema_update=SCHEMA, partitions=[2, 3], schemaverse_to_dls=False, send_notification=True,
        station_version=2, first_functions={"2": 17},
    )  # fmt: skip
    reply = s.parse_creation_reply(body)
    assert reply == s.CreationReply(
        schema_update=SCHEMA,
        partitions=[2, 3],
        schemaverse_to_dls=False,
        send_notification=True,
        station_version=2,
        functions={"2": 17},
    )
    consumer = s.parse_creation_reply(s.consumer_creation_reply(schema_update=s.EMPTY_SCHEMA, partitions=None))
    assert consumer.partitions is None  # a legacy station
    assert consumer.schema_update == s.EMPTY_SCHEMA and consumer.schema_update.is_empty
    assert consumer.schemaverse_to_dls is None and consumer.send_notification is None  # not sent
    assert s.parse_creation_reply(b'{"partitions_update": {"partitions_list": []}}').partitions is None
    assert s.parse_creation_reply(b'{"station_partitions_first_functions": {"1": 5}, "station_version": 2}').functions == {
        "1": 5
    }


def test_creation_reply_errors() -> None:
    assert s.parse_creation_reply(b"") == s.CreationReply()  # empty: success, nothing known
    with pytest.raises(s.BodyError, match="^User x does not exist$"):
        s.parse_creation_reply(s.producer_creation_error("User x does not exist"))
    with pytest.raises(s.BodyError, match=r"^stream not found \(10059\)$"):
        s.parse_creation_reply(b"stream not found (10059)")  # consumer errors are plain text
    with pytest.raises(s.BodyError, match=r"^\[1\]$"):
        s.parse_creation_reply(b"[1]")


def test_schema_creation_reply_parse() -> None:
    assert s.parse_schema_creation_reply(s.schema_creation_reply()) == ""
    assert s.parse_schema_creation_reply(b"") == ""
    assert s.parse_schema_creation_reply(s.schema_creation_reply("bad")) == "bad"
    assert s.parse_schema_creation_reply(b"[]") == "[]"
    with pytest.raises(s.BodyError, match="^oops$"):
        s.parse_schema_creation_reply(b"oops")


def test_schema_update_broadcast() -> None:
    """§5.10: capitalised UpdateType, a complete init even for a drop."""
    init = s.SchemaUpdate.for_schema(SCHEMA)
    assert json.loads(init.to_json()) == {
        "UpdateType": 1,
        "init": {
            "schema_name": "order-v",
            "active_version": {
                "version_number": 3,
                "descriptor": "",
                "schema_content": '{"type":"object"}',
                "message_struct_name": "",
            },
            "type": "json",
        },
    }
    drop = s.SchemaUpdate.for_schema(s.EMPTY_SCHEMA)
    assert json.loads(drop.to_json()) == {"UpdateType": 2, "init": EMPTY_INIT}
    assert s.SchemaUpdate.parse(init.to_json()).schema == SCHEMA
    assert s.SchemaUpdate.parse(drop.to_json()).schema is None
    # Go's reading: a drop is a drop even with a filled-in init
    assert s.SchemaUpdate.parse({"UpdateType": 2, "init": SCHEMA.to_dict()}).schema is None
    # Python's reading: no UpdateType, the name decides
    assert s.SchemaUpdate.parse({"init": SCHEMA.to_dict()}).schema == SCHEMA
    assert s.SchemaUpdate.parse({"UpdateType": 1}).schema is None
    for bad in (b"{nope", b"[]", b'{"init": "x"}'):
        with pytest.raises(s.BodyError, match="invalid schema"):
            s.SchemaUpdate.parse(bad)


def test_schema_init_parse_is_lenient() -> None:
    init = s.SchemaInit.parse({"schema_name": "n", "type": 5, "active_version": {"version_number": "3"}})
    assert init == s.SchemaInit(schema_name="n")
    assert s.SchemaInit.parse(SCHEMA.to_dict()) == SCHEMA


def test_sdk_clients_update() -> None:
    """§5.11."""
    update = s.SdkClientsUpdate(station_name="orders#eu", type=s.UPDATE_SCHEMAVERSE_TO_DLS, update=False)
    assert update.to_json() == b'{"station_name": "orders#eu", "type": "schemaverse_to_dls", "update": false}'
    assert s.SdkClientsUpdate.parse(update.to_json()) == update
    assert s.SdkClientsUpdate.parse(b'{"type": "remove_station", "station_name": "a"}').update is None
    with pytest.raises(s.BodyError):
        s.SdkClientsUpdate.parse(b"[]")


def test_other_broadcasts() -> None:
    assert s.configurations_update(True) == b'{"notifications": true}'
    assert s.parse_functions_update(b'{"functions": {"1": 4, "2": 5}}') == {"1": 4, "2": 5}
    assert s.parse_functions_update(b'{"functions": null}') == {}
    with pytest.raises(s.BodyError):
        s.parse_functions_update(b'{"functions": [1]}')


# -- encodings ---------------------------------------------------------------------------------


def test_encodings() -> None:
    assert s.dumps({"a": 1, "b": [True, None]}) == b'{"a":1,"b":[true,null]}'
    assert s.broker_dumps({"a": 1, "b": [True, None]}) == b'{"a": 1, "b": [true, null]}'
    # orjson refuses a lone surrogate: the fallback still gives compact, valid JSON
    assert s.dumps({"e": "bad \ud800"}) == b'{"e":"bad \\ud800"}'
    assert s.reply_text(b"Station  does not exist") == "Station  does not exist"
    assert s.reply_text(b"\xff") == "\ufffd"


def test_headers() -> None:
    assert s.HEADER_PRODUCED_BY == "$memphis_producedBy"
    assert s.HEADER_CONNECTION_ID == "$memphis_connectionId"
    assert (s.HEADER_MSG_ID, s.HEADER_NATS_MSG_ID) == ("msg-id", "Nats-Msg-Id")
    assert (s.HEADER_PM_ID, s.HEADER_PM_CG_NAME) == ("$memphis_pm_id", "$memphis_pm_cg_name")
    assert s.DLS_PRODUCER == "$memphis_dls"
    for h in (s.HEADER_PRODUCED_BY, s.HEADER_CONNECTION_ID, s.HEADER_PM_ID, s.HEADER_PM_CG_NAME):
        assert h.startswith(s.RESERVED_HEADER_PREFIX)
