"""The connection object (``memphis.memphis.Memphis``): same methods, arguments and defaults as
memphis-py 1.3.1, on the Rust core."""

from __future__ import annotations

import asyncio
import logging
import uuid
import warnings
from collections.abc import Callable, Generator, Sequence
from typing import Any

import orjson

from ._connect import ConnectOptions, parse_servers, tls_context
from ._connection import NatsConnection
from ._subjects import (
    GLOBAL_ACCOUNT,
    SDK_CLIENTS_UPDATES,
    UPDATE_REMOVE_STATION,
    UPDATE_SCHEMAVERSE_TO_DLS,
    UPDATE_SEND_NOTIFICATION,
    BodyError,
    ConsumerCreation,
    CreationReply,
    ProducerCreation,
    SchemaAttachment,
    SchemaCreation,
    SchemaDetachment,
    SdkClientsUpdate,
    StationCreation,
    durable_name,
    final_subject,
    functions_updates_subject,
    internal_name,
    js_consumer_create,
    js_consumer_info,
    js_stream_info,
    parse_creation_reply,
    parse_schema_creation_reply,
    reply_text,
    schema_updates_subject,
    station_streams,
)
from .consumer import DEFAULT_MAX_BYTES_PER_PULL, Consumer
from .exceptions import (
    MemphisArgumentError,
    MemphisArgumentTypeError,
    MemphisConnectError,
    MemphisConnectionClosedError,
    MemphisError,
    MemphisNoRespondersError,
    MemphisProduceError,
    MemphisSchemaError,
    MemphisTimeoutError,
)
from .headers import Headers
from .message import Message
from .partition_generator import PartitionGenerator
from .producer import (
    DEFAULT_MAX_INFLIGHT,
    DEFAULT_MAX_INFLIGHT_BYTES,
    ProduceFailure,
    Producer,
    ProduceResult,
    check_partition_args,
    check_produce_args,
)
from .schemaverse import load_schema_file, validate_schema_name, validate_schema_type
from .station import Station, StationState
from .types import Retention, Storage
from .utils import (
    check_bool,
    check_callable,
    check_int,
    check_name,
    check_str,
    random_bytes,
)

__all__ = ["Connecting", "Memphis", "app_id", "connect"]

log = logging.getLogger("memphis_fast")

#: Sent as ``app_id`` in producer/consumer creations (one per process, like memphis-py).
app_id = str(uuid.uuid4())

_CONNECT_METHODS = "You have to connect with one of the following methods: connection token / password"


def _enum_value(value: Any, enum: type[Retention] | type[Storage], what: str) -> str:
    if isinstance(value, enum):
        return str(value.value)
    # memphis-py's own enums (mixed imports during a migration) and plain strings
    value = getattr(value, "value", value)
    if isinstance(value, str):
        v = value.lower()
        if v in {e.value for e in enum}:
            return v
    raise MemphisArgumentError(f"{what} must be one of {[e.value for e in enum]}, not {value!r}")


def _check_group(consumer_group: object) -> None:
    if consumer_group != "":
        check_name("consumer_group", consumer_group, "Consumer group")


_MS = 1_000_000  # nanoseconds per millisecond (JetStream durations)


class Memphis:
    """A connection to a Memphis broker.

    >>> memphis = Memphis()
    >>> await memphis.connect(host="localhost", username="root", password="memphis")

    Also an async context manager (``async with Memphis() as m: await m.connect(...)``)
    that closes on exit.
    """

    MAX_BATCH_SIZE = 5000
    MEMPHIS_GLOBAL_ACCOUNT_NAME = GLOBAL_ACCOUNT
    SEED = 31  # must match the Rust core's PARTITION_KEY_SEED (pinned by a test)

    def __init__(self) -> None:
        self.is_connection_active = False
        self.connection_id: str | None = None
        self.username = ""
        self.producers_map: dict[str, Producer] = {}
        self.consumers_map: dict[str, Consumer] = {}
        self._conn: NatsConnection | None = None
        self._stations: dict[str, StationState] = {}
        self._send_notification = False
        self._updates_sid: int | None = None
        self._closed = False

    async def __aenter__(self) -> Memphis:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- connection --------------------------------------------------------------------------
    def _require_conn(self) -> NatsConnection:
        """The open connection; after ``close()`` (or once reconnecting gave up) raises
        :class:`MemphisConnectionClosedError` ("the connection is closed"), the error every
        operation on a closed connection raises."""
        conn = self._conn
        if conn is not None and (self._closed or conn.is_closed):
            raise MemphisConnectionClosedError("the connection is closed")
        if conn is None or not self.is_connection_active:
            raise MemphisConnectError("Connection is dead: connect() first")
        return conn

    async def connect(
        self,
        host: str | Sequence[str],
        username: str,
        account_id: int = 1,
        connection_token: str = "",
        password: str = "",
        port: int = 6666,
        reconnect: bool = True,
        max_reconnect: int = -1,
        reconnect_interval_ms: int = 1500,
        timeout_ms: int = 2000,
        cert_file: str = "",
        key_file: str = "",
        ca_file: str = "",
        connection_event_callback: Callable[[str, Any], Any] | None = None,
        ping_interval_ms: int = 20000,
    ) -> None:
        """Connect to Memphis.

        Args:
            host: broker host; ``http://``/``https://`` prefixes are stripped; a comma-separated
                string or a list of ``host`` / ``host:port`` entries gives the servers of a
                cluster to fail over to (the cluster's ``connect_urls`` are added).
            username: user of type root/application.
            account_id: the account id of the cloud version (default 1).
            connection_token: connect with a connection token...
            password: ...or with a password (exactly one of the two).
            port: default 6666.
            reconnect: reconnect when the connection is lost (default True).
            max_reconnect: reconnect attempts; -1 = forever. Honoured as given (memphis-py
                lowered anything above 9 to 9).
            reconnect_interval_ms: wait between attempts (default 1500).
            timeout_ms: connect timeout (default 2000).
            cert_file, key_file, ca_file: mutual TLS; all three or none.
            connection_event_callback: ``cb(event, detail)`` for ``"disconnected"``,
                ``"reconnected"``, ``"closed"``, ``"lame_duck"``, ``"server_error"``.
            ping_interval_ms: keepalive interval; two unanswered pings mean a dead peer.

        Raises:
            MemphisConnectError: with the server's reason (wrong credentials, unreachable...).
        """
        if self.is_connection_active:
            raise MemphisConnectError("already connected; close() first")
        if isinstance(host, (list, tuple)):
            # Several servers (a cluster): ["h1:6666", "h2:6667"], like "h1:6666,h2:6667".
            if not host:
                raise MemphisArgumentError("host can not be an empty list")
            for h in host:
                check_str("each host", h, empty=False)
        else:
            check_str("host", host, empty=False)
        check_str("username", username)
        check_int("account_id", account_id, minimum=0)
        check_str("connection_token", connection_token)
        check_str("password", password)
        check_int("port", port, minimum=1, maximum=65535)
        check_bool("reconnect", reconnect)
        check_int("max_reconnect", max_reconnect, minimum=-1)
        check_int("reconnect_interval_ms", reconnect_interval_ms, minimum=0)
        check_int("timeout_ms", timeout_ms, minimum=1)
        check_str("cert_file", cert_file)
        check_str("key_file", key_file)
        check_str("ca_file", ca_file)
        check_callable("connection_event_callback", connection_event_callback)
        check_int("ping_interval_ms", ping_interval_ms, minimum=1)
        if (connection_token != "") == (password != ""):
            raise MemphisConnectError(_CONNECT_METHODS)
        servers = parse_servers(host, port)
        self.host = servers[0].host
        self.username = username
        self.account_id = account_id
        self.connection_token = connection_token
        self.password = password
        self.port = port
        self.reconnect = reconnect
        self.max_reconnect = max_reconnect
        self.reconnect_interval_ms = reconnect_interval_ms
        self.timeout_ms = timeout_ms
        self.connection_id = str(uuid.uuid4())
        tls = tls_context(cert_file, key_file, ca_file)
        opts = ConnectOptions(
            servers=servers,
            name=f"{self.connection_id}::{username}",
            user="" if connection_token else f"{username}${account_id}",
            fallback_user="" if connection_token else username,
            password=password,
            token=connection_token,
            tls=tls,
            tls_hostname=self.host if tls is not None else None,
            connect_timeout=max(timeout_ms, 1) / 1000,
            allow_reconnect=reconnect,
            max_reconnect=max_reconnect if reconnect else 0,
            reconnect_wait=reconnect_interval_ms / 1000,
            ping_interval=ping_interval_ms / 1000,
            on_event=connection_event_callback,
        )
        self._conn = await NatsConnection.connect(opts)
        self.is_connection_active = True
        self._closed = False
        self._updates_sid = self._conn.subscribe(SDK_CLIENTS_UPDATES, self._on_sdk_updates)

    def is_connected(self) -> bool:
        """True while connected (False before ``connect()``, while reconnecting, after close)."""
        return self._conn is not None and self.is_connection_active and self._conn.is_connected

    @property
    def broker_manager(self) -> NatsConnection | None:
        """The underlying NATS connection (memphis-py exposed nats-py's client here)."""
        return self._conn

    async def close(self) -> None:
        """Close: stop consumers (nacking what they hold), wait (bounded) for in-flight
        produces, cancel every background task and close the connection. Then raises a
        :class:`~memphis_fast.exceptions.MemphisProduceError` if nonblocking produces failed
        and were never reported (no silent loss)."""
        if self._conn is None or self._closed:
            return
        self._closed = True
        conn = self._conn
        for consumer in list(self.consumers_map.values()):
            try:
                await consumer._shutdown()
            except Exception:
                log.exception("stopping consumer %s", consumer.consumer_name)
        await conn.close()
        self.is_connection_active = False
        failures: list[ProduceFailure] = []
        for producer in list(self.producers_map.values()):
            failures.extend(producer.take_failures())
        self.producers_map.clear()
        self.consumers_map.clear()
        self._stations.clear()
        if failures:
            raise MemphisProduceError(
                f"{len(failures)} nonblocking produce(s) failed and were not reported before close()",
                failures=failures,
            )

    # -- control plane -----------------------------------------------------------------------
    async def _request(self, subject: str, payload: bytes, timeout: float, timeout_retries: int = 5) -> Any:
        """A control-plane request, retried on timeout ``timeout_retries`` times (memphis-py's
        policy). Raises :class:`MemphisError` subclasses."""
        conn = self._require_conn()
        attempt = 0
        while True:
            try:
                return await conn.request(subject, payload, timeout)
            except MemphisTimeoutError:
                if attempt >= timeout_retries:
                    raise MemphisTimeoutError(
                        f"timeout: the broker did not answer {subject} "
                        f"({attempt + 1} attempt(s) of {timeout:g} s)"
                    ) from None
                attempt += 1
            except MemphisNoRespondersError:
                raise MemphisNoRespondersError(
                    f"no responders on {subject}: is this a Memphis broker (its control plane is not answering)?"
                ) from None

    def _on_sdk_updates(self, msgs: list[Any]) -> None:
        for m in msgs:
            try:
                update = SdkClientsUpdate.parse(m.data)
                if update.type == UPDATE_SEND_NOTIFICATION:
                    self._send_notification = bool(update.update)
                elif update.type == UPDATE_SCHEMAVERSE_TO_DLS:
                    st = self._stations.get(internal_name(update.station_name))
                    if st is not None:
                        st.schemaverse_to_dls = bool(update.update)
                elif update.type == UPDATE_REMOVE_STATION:
                    self._forget_station(internal_name(update.station_name))
            except Exception:
                log.exception("bad message on %s: %r", SDK_CLIENTS_UPDATES, bytes(m.data)[:200])

    def _acquire_station(self, internal: str) -> StationState:
        """The station's shared state, subscribing its schema listener for the first client."""
        st = self._stations.get(internal)
        if st is None:
            st = self._stations[internal] = StationState(internal)
        if st.clients == 0 and st.schema_sid is None:
            st.schema_sid = self._require_conn().subscribe(
                schema_updates_subject(internal), st.on_schema_broadcast
            )
        st.clients += 1
        return st

    def _release_station(self, internal: str) -> None:
        st = self._stations.get(internal)
        if st is None:
            return
        st.clients -= 1
        if st.clients <= 0:
            self._drop_listeners(st)
            del self._stations[internal]

    def _drop_listeners(self, st: StationState) -> None:
        conn = self._conn
        if conn is None:
            return
        for sid in (st.schema_sid, st.functions_sid):
            if sid is not None:
                conn.unsubscribe(sid)
        st.schema_sid = st.functions_sid = None

    def _forget_station(self, internal: str) -> None:
        """The station is gone: drop its cached producers/consumers (exact match) and listeners."""
        for k in [k for k, p in self.producers_map.items() if p.internal_station_name == internal]:
            del self.producers_map[k]
        for k in [k for k, c in self.consumers_map.items() if c.internal_station_name == internal]:
            c = self.consumers_map.pop(k)
            asyncio.ensure_future(c._shutdown())
        st = self._stations.pop(internal, None)
        if st is not None:
            self._drop_listeners(st)

    def _apply_reply(self, st: StationState, reply: CreationReply) -> list[int] | None:
        """Apply a producer/consumer creation reply; returns the partition list (None =
        a legacy station without partitions)."""
        if reply.schema_update is not None:
            st.schema.update(reply.schema_update)
        if reply.schemaverse_to_dls is not None:
            st.schemaverse_to_dls = reply.schemaverse_to_dls
        if reply.send_notification is not None:
            self._send_notification = reply.send_notification
        return reply.partitions

    @staticmethod
    def _parse_creation_reply(raw: bytes) -> CreationReply:
        try:
            return parse_creation_reply(raw)
        except BodyError as exc:
            raise MemphisError(str(exc)) from None

    # -- stations ----------------------------------------------------------------------------
    async def station(
        self,
        name: str,
        retention_type: Retention = Retention.MAX_MESSAGE_AGE_SECONDS,
        retention_value: int = 3600,
        storage_type: Storage = Storage.DISK,
        replicas: int = 1,
        idempotency_window_ms: int = 120000,
        schema_name: str = "",
        send_poison_msg_to_dls: bool = True,
        send_schema_failed_msg_to_dls: bool = True,
        tiered_storage_enabled: bool = False,
        partitions_number: int = 1,
        dls_station: str = "",
        timeout_retries: int = 5,
    ) -> Station:
        """Create a station (an existing one is returned as is: its options are not changed).

        Args:
            name: station name.
            retention_type: :class:`Retention` (its string value is accepted too).
            retention_value: seconds / messages / bytes, by retention type (default 3600).
            storage_type: :class:`Storage` (default ``DISK``).
            replicas: default 1.
            idempotency_window_ms: de-duplication window (default 120000).
            schema_name: schema to enforce.
            send_poison_msg_to_dls, send_schema_failed_msg_to_dls: DLS flags (default True).
            tiered_storage_enabled: default False.
            partitions_number: default 1 (0 means 1).
            dls_station: a station that also receives dead letters.
        """
        self._require_conn()
        check_name("name", name, "Station")
        check_int("retention_value", retention_value, minimum=0)
        check_int("replicas", replicas, minimum=1)
        check_int("idempotency_window_ms", idempotency_window_ms, minimum=0)
        check_str("schema_name", schema_name)
        check_bool("send_poison_msg_to_dls", send_poison_msg_to_dls)
        check_bool("send_schema_failed_msg_to_dls", send_schema_failed_msg_to_dls)
        check_bool("tiered_storage_enabled", tiered_storage_enabled)
        check_int("partitions_number", partitions_number, minimum=0)
        check_str("dls_station", dls_station)
        if dls_station != "":
            check_name("dls_station", dls_station, "Station")
        check_int("timeout_retries", timeout_retries, minimum=0)
        if partitions_number == 0:
            partitions_number = 1
        req = StationCreation(
            name=name,
            retention_type=_enum_value(retention_type, Retention, "retention_type"),
            retention_value=retention_value,
            storage_type=_enum_value(storage_type, Storage, "storage_type"),
            replicas=replicas,
            idempotency_window_in_ms=idempotency_window_ms,
            schema_name=schema_name,
            dls_poison=send_poison_msg_to_dls,
            dls_schemaverse=send_schema_failed_msg_to_dls,
            username=self.username,
            tiered_storage_enabled=tiered_storage_enabled,
            partitions_number=partitions_number,
            dls_station=dls_station,
        )
        res = await self._request(req.subject, req.to_json(), 20, timeout_retries)
        err = reply_text(res.data)
        if err != "" and "already exist" not in err:
            raise MemphisError(err)
        return Station(self, name)

    # -- producers ---------------------------------------------------------------------------
    async def producer(
        self,
        station_name: str | list[str],
        producer_name: str,
        generate_random_suffix: bool = False,
        timeout_retries: int = 5,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES,
        failure_callback: Callable[[ProduceFailure], Any] | None = None,
        auto_msg_id: bool = False,
        delivery_callback: Callable[[ProduceResult], Any] | None = None,
    ) -> Producer:
        """Create a producer (cached per station and name: a second call returns the same one).

        Args:
            station_name: a station, or a list of stations (multi-station producer).
            producer_name: the producer's name.
            generate_random_suffix: deprecated; appends ``_<8 hex>`` to the registered name.
            max_inflight, max_inflight_bytes: the nonblocking produce window.
            failure_callback: ``cb(ProduceFailure)`` for failed nonblocking messages (else they
                are raised by the next ``produce``/``flush``/``destroy``/``close``).
            auto_msg_id: give every message a unique ``msg_id``, so that re-sending after a
                reconnect is de-duplicated by the broker.
            delivery_callback: ``cb(ProduceResult)`` called once for every message, stored or
                not, in the order the outcomes arrive (for one partition: production order).
                A failure given to it counts as reported (it is not raised later).
        """
        self._require_conn()
        if isinstance(station_name, list):
            if not station_name:
                raise MemphisArgumentError("station_name: the list of stations is empty")
            for sn in station_name:
                check_name("station_name", sn, "Station")
        elif isinstance(station_name, str):
            check_name("station_name", station_name, "Station")
        else:
            raise MemphisArgumentTypeError(
                f"station_name should be either string or list of strings, not {type(station_name).__name__}"
            )
        check_name("producer_name", producer_name, "Producer")
        check_bool("generate_random_suffix", generate_random_suffix)
        check_int("timeout_retries", timeout_retries, minimum=0)
        check_int("max_inflight", max_inflight, minimum=1)
        check_int("max_inflight_bytes", max_inflight_bytes, minimum=1)
        check_callable("failure_callback", failure_callback)
        check_bool("auto_msg_id", auto_msg_id)
        check_callable("delivery_callback", delivery_callback)
        real_name = producer_name.lower()
        if generate_random_suffix:
            warnings.warn(
                "generate_random_suffix is deprecated (memphis stopped supporting it).",
                DeprecationWarning,
                stacklevel=2,
            )
            producer_name = f"{producer_name}_{random_bytes(8)}"
        opts: dict[str, Any] = {
            "max_inflight": max_inflight,
            "max_inflight_bytes": max_inflight_bytes,
            "failure_callback": failure_callback,
            "auto_msg_id": auto_msg_id,
            "delivery_callback": delivery_callback,
        }
        if isinstance(station_name, list):
            return Producer(self, producer_name, station_name, real_name, **opts)
        return await self._single_station_producer(station_name, producer_name, real_name, timeout_retries, opts)

    async def _single_station_producer(
        self,
        station_name: str,
        producer_name: str,
        real_name: str,
        timeout_retries: int,
        opts: dict[str, Any] | None = None,
    ) -> Producer:
        internal = internal_name(station_name)
        key = f"{internal}_{real_name}"
        cached = self.producers_map.get(key)
        if cached is not None:
            return cached
        req = ProducerCreation(
            name=producer_name,
            station_name=station_name,
            connection_id=self.connection_id or "",
            username=self.username,
            app_id=app_id,
        )
        st = self._acquire_station(internal)
        try:
            res = await self._request(req.subject, req.to_json(), 20, timeout_retries)
            reply = self._parse_creation_reply(res.data)
            partitions = self._apply_reply(st, reply)
            if reply.station_version >= 2 and st.functions_sid is None:
                st.functions = dict(reply.functions)
                st.functions_sid = self._require_conn().subscribe(
                    functions_updates_subject(internal), st.on_functions_broadcast
                )
                # Subscribed after the request: the server holds it when producer() returns.
                await self._require_conn().flush(20)
        except BaseException:
            self._release_station(internal)
            raise
        existing = self.producers_map.get(key)
        if existing is not None:  # created concurrently
            self._release_station(internal)
            return existing
        producer = Producer(
            self, producer_name, station_name, real_name, state=st, partitions=partitions, **(opts or {})
        )
        self.producers_map[key] = producer
        return producer

    async def produce(
        self,
        station_name: str | list[str],
        producer_name: str,
        message: Any,
        generate_random_suffix: bool = False,
        ack_wait_sec: int = 15,
        headers: Headers | dict[str, Any] | None = None,
        async_produce: bool = False,
        msg_id: str | None = None,
        producer_partition_key: str | None = None,
        producer_partition_number: int = -1,
        nonblocking: bool = False,
    ) -> ProduceResult | None:
        """Produce without keeping a producer object (one is created and cached); returns
        the :data:`ProduceResult` of an awaited produce (memphis-py: ``None``), ``None`` for a
        nonblocking one or a multi-station producer.

        A schema failure is raised as a plain :class:`MemphisError` here (memphis-py re-wraps
        it; ``Producer.produce`` raises :class:`MemphisSchemaError`)."""
        self._require_conn()
        if not isinstance(station_name, (str, list)):
            raise MemphisArgumentTypeError("station_name should be either string or list of strings")
        check_produce_args(
            message,
            ack_wait_sec,
            headers,
            async_produce,
            nonblocking,
            msg_id,
            None,
            producer_partition_key,
            producer_partition_number,
        )
        producer = await self.producer(station_name, producer_name, generate_random_suffix)
        try:
            return await producer.produce(
                message,
                ack_wait_sec=ack_wait_sec,
                headers=headers,
                async_produce=async_produce,
                nonblocking=nonblocking,
                msg_id=msg_id,
                producer_partition_key=producer_partition_key,
                producer_partition_number=producer_partition_number,
            )
        except MemphisSchemaError as exc:
            raise MemphisError(exc.message) from exc

    # -- consumers ---------------------------------------------------------------------------
    async def consumer(
        self,
        station_name: str,
        consumer_name: str,
        consumer_group: str = "",
        pull_interval_ms: int = 1000,
        batch_size: int = 10,
        batch_max_time_to_wait_ms: int = 100,
        max_ack_time_ms: int = 30000,
        max_msg_deliveries: int = 2,
        generate_random_suffix: bool = False,
        start_consume_from_sequence: int = 1,
        last_messages: int = -1,
        timeout_retries: int = 5,
        error_callback: Callable[[MemphisError], Any] | None = None,
        max_bytes_per_pull: int = DEFAULT_MAX_BYTES_PER_PULL,
    ) -> Consumer:
        """Create a consumer (cached per station and name).

        Args:
            station_name: station to consume from (created with defaults if missing).
            consumer_name: the consumer's name.
            consumer_group: its group (default: the consumer name).
            pull_interval_ms: pause after pulls came back empty (default 1000).
            batch_size: messages per batch, 1..5000 (default 10).
            batch_max_time_to_wait_ms: how long a pull waits for a full batch (min/default 100).
            max_ack_time_ms: ack wait before redelivery (default 30000).
            max_msg_deliveries: deliveries before a message is poison (default 2).
            generate_random_suffix: deprecated; appends ``_<8 hex>`` to the name.
            start_consume_from_sequence: first sequence for a new group (default 1).
            last_messages: start a new group with the last N messages (default -1 = all).
            error_callback: ``cb(MemphisError)`` for consumer errors (Go: ConsumerErrorHandler);
                the default logs them.
            max_bytes_per_pull: byte limit of one pull (prefetch memory bound).
        """
        self._require_conn()
        check_name("station_name", station_name, "Station")
        check_name("consumer_name", consumer_name, "Consumer")
        _check_group(consumer_group)
        check_int("pull_interval_ms", pull_interval_ms, minimum=0)
        self._check_batch_size(batch_size)
        check_int("batch_max_time_to_wait_ms", batch_max_time_to_wait_ms, minimum=0)
        check_int("max_ack_time_ms", max_ack_time_ms, minimum=1)
        check_int("max_msg_deliveries", max_msg_deliveries, minimum=1)
        check_bool("generate_random_suffix", generate_random_suffix)
        check_int("start_consume_from_sequence", start_consume_from_sequence)
        check_int("last_messages", last_messages)
        check_int("timeout_retries", timeout_retries, minimum=0)
        check_callable("error_callback", error_callback)
        check_int("max_bytes_per_pull", max_bytes_per_pull, minimum=1)
        real_name = consumer_name.lower()
        if generate_random_suffix:
            warnings.warn(
                "generate_random_suffix is deprecated (memphis stopped supporting it).",
                DeprecationWarning,
                stacklevel=2,
            )
            consumer_name = f"{consumer_name}_{random_bytes(8)}"
        cg = consumer_name if not consumer_group else consumer_group
        if start_consume_from_sequence <= 0:
            raise MemphisArgumentError("start_consume_from_sequence has to be a positive number")
        if last_messages < -1:
            raise MemphisArgumentError("min value for last_messages is -1")
        if start_consume_from_sequence > 1 and last_messages > -1:
            raise MemphisArgumentError(
                "Consumer creation options can't contain both start_consume_from_sequence and last_messages"
            )
        internal = internal_name(station_name)
        key = f"{internal}_{real_name}"
        cached = self.consumers_map.get(key)
        if cached is not None:
            return cached
        req = ConsumerCreation(
            name=consumer_name,
            station_name=station_name,
            connection_id=self.connection_id or "",
            # The resolved group (memphis-py sent "" and let the broker resolve it, R5).
            consumers_group=cg,
            max_ack_time_ms=max_ack_time_ms,
            max_msg_deliveries=max_msg_deliveries,
            start_consume_from_sequence=start_consume_from_sequence,
            last_messages=last_messages,
            username=self.username,
            app_id=app_id,
        )
        st = self._acquire_station(internal)
        try:
            res = await self._request(req.subject, req.to_json(), 20, timeout_retries)
            reply = self._parse_creation_reply(res.data)
            partitions = self._apply_reply(st, reply)
            durable = durable_name(cg)
            streams = station_streams(internal, partitions)
            conn = self._require_conn()
            # Bind: the broker created the durable on every partition (Go: consumer info).
            infos = await asyncio.gather(
                *(conn.request(js_consumer_info(s, durable), b"", 20) for s in streams)
            )
            for s, info in zip(streams, infos, strict=True):
                try:
                    body = orjson.loads(info.data) if info.data else {}
                except orjson.JSONDecodeError:
                    body = {}
                err = body.get("error") if isinstance(body, dict) else None
                if err and isinstance(err, dict) and err.get("err_code") == 10014:
                    # Memphis 1.4.4 creates no durable on a one-partition station when
                    # last_messages > 0 (its single-partition branch loops over a map only the
                    # multi-partition branch fills): create it as the broker should have.
                    err = await self._create_missing_durable(
                        conn, s, durable, cg, max_ack_time_ms, max_msg_deliveries,
                        start_consume_from_sequence, last_messages,
                    )
                if err:
                    desc = err.get("description", err) if isinstance(err, dict) else err
                    raise MemphisError(f"consumer group {cg!r} has no durable consumer on {s}: {desc}")
            consumer = Consumer(
                self,
                station_name,
                consumer_name,
                cg,
                pull_interval_ms,
                batch_size,
                batch_max_time_to_wait_ms,
                max_ack_time_ms,
                max_msg_deliveries,
                error_callback=error_callback,
                start_consume_from_sequence=start_consume_from_sequence,
                last_messages=last_messages,
                partition_generator=PartitionGenerator(partitions) if partitions else None,
                state=st,
                partitions=partitions,
                max_bytes_per_pull=max_bytes_per_pull,
            )
            try:
                # The consumer subscribed to its group's DLS subject after the creation
                # requests: one PING/PONG so that the server holds that subscription when
                # consumer() returns (a message resent to the group right after, from another
                # connection, is otherwise dropped by a server that has not read the SUB yet).
                await conn.flush(20)
            except BaseException:
                await consumer._shutdown()
                raise
        except BaseException:
            self._release_station(internal)
            raise
        consumer._start_ping()
        self.consumers_map[key] = consumer
        return consumer

    async def _create_missing_durable(
        self,
        conn: NatsConnection,
        stream: str,
        durable: str,
        group: str,
        max_ack_time_ms: int,
        max_msg_deliveries: int,
        start_consume_from_sequence: int,
        last_messages: int,
    ) -> Any:
        """Create the group's durable consumer on ``stream`` the way the broker does
        (docs/protocol.md §6.3: explicit acks, the group's ack wait and max deliveries, filter
        ``<stream>.final``, the deliver policy from ``last_messages`` /
        ``start_consume_from_sequence``). Returns the JetStream error (None on success)."""
        log.warning(
            "the broker created no durable consumer for group %r on %s (a Memphis 1.4.4 bug with "
            "last_messages on one-partition stations): creating it here",
            group,
            stream,
        )
        config: dict[str, Any] = {
            "durable_name": durable,
            "ack_policy": "explicit",
            "ack_wait": max_ack_time_ms * _MS,
            "max_deliver": max_msg_deliveries,
            "filter_subject": final_subject(stream),
            "replay_policy": "instant",
            "max_ack_pending": -1,
        }
        if last_messages == 0 and start_consume_from_sequence == 1:
            config["deliver_policy"] = "new"
        elif last_messages > 0:
            res = await conn.request(js_stream_info(stream), b"", 20)
            info = orjson.loads(res.data) if res.data else {}
            if "error" in info:
                return info["error"]
            last_seq = int((info.get("state") or {}).get("last_seq", 0))
            config["deliver_policy"] = "by_start_sequence"
            config["opt_start_seq"] = max(1, last_seq - last_messages + 1)
        elif start_consume_from_sequence > 1:
            config["deliver_policy"] = "by_start_sequence"
            config["opt_start_seq"] = start_consume_from_sequence
        else:
            config["deliver_policy"] = "all"
        body = orjson.dumps({"stream_name": stream, "config": config})
        res = await conn.request(js_consumer_create(stream, durable), body, 20)
        reply = orjson.loads(res.data) if res.data else {}
        return reply.get("error") if isinstance(reply, dict) else None

    def _check_batch_size(self, batch_size: object) -> None:
        check_int("batch_size", batch_size)
        assert isinstance(batch_size, int)
        if batch_size > self.MAX_BATCH_SIZE or batch_size < 1:
            raise MemphisArgumentError(
                f"Batch size can not be greater than {self.MAX_BATCH_SIZE} or less than 1 (batch_size={batch_size})"
            )

    async def fetch_messages(
        self,
        station_name: str,
        consumer_name: str,
        consumer_group: str = "",
        batch_size: int = 10,
        batch_max_time_to_wait_ms: int = 100,
        max_ack_time_ms: int = 30000,
        max_msg_deliveries: int = 2,
        generate_random_suffix: bool = False,
        start_consume_from_sequence: int = 1,
        last_messages: int = -1,
        consumer_partition_key: str | None = None,
        consumer_partition_number: int = -1,
        prefetch: bool = False,
    ) -> list[Message]:
        """Fetch one batch without keeping a consumer object (one is created and cached)."""
        self._require_conn()
        check_name("station_name", station_name, "Station")
        check_name("consumer_name", consumer_name, "Consumer")
        _check_group(consumer_group)
        self._check_batch_size(batch_size)
        check_int("batch_max_time_to_wait_ms", batch_max_time_to_wait_ms, minimum=0)
        check_int("max_ack_time_ms", max_ack_time_ms, minimum=1)
        check_int("max_msg_deliveries", max_msg_deliveries, minimum=1)
        check_bool("generate_random_suffix", generate_random_suffix)
        check_int("start_consume_from_sequence", start_consume_from_sequence, minimum=1)
        check_int("last_messages", last_messages, minimum=-1)
        check_partition_args(consumer_partition_key, consumer_partition_number)
        check_bool("prefetch", prefetch)
        key = f"{internal_name(station_name)}_{consumer_name.lower()}"
        consumer = self.consumers_map.get(key)
        if consumer is None:
            consumer = await self.consumer(
                station_name=station_name,
                consumer_name=consumer_name,
                consumer_group=consumer_group,
                batch_size=batch_size,
                batch_max_time_to_wait_ms=batch_max_time_to_wait_ms,
                max_ack_time_ms=max_ack_time_ms,
                max_msg_deliveries=max_msg_deliveries,
                generate_random_suffix=generate_random_suffix,
                start_consume_from_sequence=start_consume_from_sequence,
                last_messages=last_messages,
            )
        return await consumer.fetch(
            batch_size,
            consumer_partition_key=consumer_partition_key,
            consumer_partition_number=consumer_partition_number,
            prefetch=prefetch,
        )

    # -- schemas -----------------------------------------------------------------------------
    async def create_schema(
        self, schema_name: str, schema_type: str, schema_path: str, timeout_retries: int = 5
    ) -> None:
        """Create a schema from a file (a new version if the name exists with other content).

        Args:
            schema_name: lower-case letters, digits, ``_ - .``; at most 128 characters.
            schema_type: ``json``, ``graphql``, ``protobuf`` or ``avro``.
            schema_path: the schema file (read without blocking the event loop).
        """
        self._require_conn()
        # schema_name, schema_type and schema_path (a str or a path) are checked with
        # memphis-py's texts by the schemaverse helpers below.
        check_int("timeout_retries", timeout_retries, minimum=0)
        validate_schema_type(schema_type)
        validate_schema_name(schema_name)
        content = await load_schema_file(schema_path)
        req = SchemaCreation(
            name=schema_name,
            schema_type=schema_type,
            created_by_username=self.username,
            schema_content=content,
        )
        res = await self._request(req.subject, req.to_json(), 20, timeout_retries)
        try:
            err = parse_schema_creation_reply(res.data)
        except BodyError as exc:
            raise MemphisError(str(exc)) from None
        if err and "already exists" not in err:
            raise MemphisError(err)

    async def schema_name_validation(self, schema_name: str) -> None:
        """Raise :class:`MemphisError` if ``schema_name`` breaks memphis-py's rules."""
        validate_schema_name(schema_name)

    async def enforce_schema(self, name: str, station_name: str, timeout_retries: int = 5) -> None:
        """Enforce a schema on an existing station (takes effect on the next message of every
        producer and consumer of the station)."""
        self._require_conn()
        check_str("name", name)
        check_str("station_name", station_name)
        check_int("timeout_retries", timeout_retries, minimum=0)
        if name == "" or station_name == "":
            raise MemphisArgumentError("name and station name can not be empty")
        check_name("station_name", station_name, "Station")
        req = SchemaAttachment(name=name, station_name=station_name, username=self.username)
        res = await self._request(req.subject, req.to_json(), 20, timeout_retries)
        err = reply_text(res.data)
        if err != "":
            raise MemphisError(err)

    async def attach_schema(self, name: str, station_name: str) -> None:
        """Deprecated: use :meth:`enforce_schema`."""
        await self.enforce_schema(name, station_name)

    async def detach_schema(self, station_name: str, timeout_retries: int = 5) -> None:
        """Remove the schema of a station."""
        self._require_conn()
        check_str("station_name", station_name)
        check_int("timeout_retries", timeout_retries, minimum=0)
        if station_name == "":
            raise MemphisArgumentError("station name is missing")
        check_name("station_name", station_name, "Station")
        req = SchemaDetachment(station_name=station_name, username=self.username)
        res = await self._request(req.subject, req.to_json(), 20, timeout_retries)
        err = reply_text(res.data)
        if err != "":
            raise MemphisError(err)

    # -- compat helpers ----------------------------------------------------------------------
    def unset_cached_producer_station(self, station_name: str) -> None:
        check_str("station_name", station_name)
        internal = internal_name(station_name)
        for k in [k for k, p in self.producers_map.items() if p.internal_station_name == internal]:
            del self.producers_map[k]

    def unset_cached_consumer_station(self, station_name: str) -> None:
        check_str("station_name", station_name)
        internal = internal_name(station_name)
        for k in [k for k, c in self.consumers_map.items() if c.internal_station_name == internal]:
            del self.consumers_map[k]

    def stats(self) -> dict[str, int]:
        """Connection counters (messages and bytes in/out, reconnects, in flight, acked...)."""
        return self._require_conn().stats() if self._conn is not None else {}




class Connecting:
    """What :func:`connect` returns: awaitable (``m = await connect(...)``) and an async
    context manager (``async with connect(...) as m:``, closed on exit)."""

    __slots__ = ("_kwargs", "_memphis")

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self._kwargs = kwargs
        self._memphis: Memphis | None = None

    async def _connect(self) -> Memphis:
        memphis = Memphis()
        await memphis.connect(**self._kwargs)
        return memphis

    def __await__(self) -> Generator[Any, None, Memphis]:
        return self._connect().__await__()

    async def __aenter__(self) -> Memphis:
        self._memphis = await self._connect()
        return self._memphis

    async def __aexit__(self, *exc: object) -> None:
        memphis, self._memphis = self._memphis, None
        if memphis is not None:
            await memphis.close()


def connect(
    host: str | Sequence[str],
    username: str,
    account_id: int = 1,
    connection_token: str = "",
    password: str = "",
    port: int = 6666,
    reconnect: bool = True,
    max_reconnect: int = -1,
    reconnect_interval_ms: int = 1500,
    timeout_ms: int = 2000,
    cert_file: str = "",
    key_file: str = "",
    ca_file: str = "",
    connection_event_callback: Callable[[str, Any], Any] | None = None,
    ping_interval_ms: int = 20000,
) -> Connecting:
    """Connect in one step: ``memphis = await memphis_fast.connect(...)`` returns a connected
    :class:`Memphis` (also usable as ``async with await connect(...) as memphis:`` or
    ``async with connect(...) as memphis:``; both close on exit). The arguments are those of
    :meth:`Memphis.connect`."""
    return Connecting(
        {
            "host": host,
            "username": username,
            "account_id": account_id,
            "connection_token": connection_token,
            "password": password,
            "port": port,
            "reconnect": reconnect,
            "max_reconnect": max_reconnect,
            "reconnect_interval_ms": reconnect_interval_ms,
            "timeout_ms": timeout_ms,
            "cert_file": cert_file,
            "key_file": key_file,
            "ca_file": ca_file,
            "connection_event_callback": connection_event_callback,
            "ping_interval_ms": ping_interval_ms,
        }
    )
