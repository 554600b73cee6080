"""The Memphis control plane: ``$memphis_*`` subjects served over a nats-py connection.

It implements the broker side of docs/protocol.md (§4-§6, §9, §10; section numbers below are
that document's):
station, producer, consumer and schema requests with the broker's exact reply formats and
error texts, the JetStream resources of §6, schema broadcasts, dead-letter records (poison
messages from JetStream's max-deliveries advisories, explicit dead-lettering, schema failures),
``dls_station`` forwarding, resending to consumer groups, and connection tracking.

Every request is handled in its own task; mutations of one station are serialised by a
per-station lock, so one slow JetStream call never blocks other stations. A malformed request
gets an error reply in the subject's format, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from .._subjects import (
    CONSUMER_CREATIONS,
    CONSUMER_DESTRUCTIONS,
    DLS_UNACKED_CONSUMER,
    DLS_UNACKED_STREAM,
    NACKED_DLS,
    NOTIFICATIONS,
    PM_ACKS,
    PRODUCER_CREATIONS,
    PRODUCER_DESTRUCTIONS,
    SCHEMA_ATTACHMENTS,
    SCHEMA_CREATIONS,
    SCHEMA_DETACHMENTS,
    SCHEMAVERSE_DLS,
    STATION_CREATIONS,
    STATION_DESTRUCTIONS,
    UPDATE_REMOVE_STATION,
    UPDATE_SCHEMAVERSE_TO_DLS,
    UPDATE_SEND_NOTIFICATION,
    ClientDestruction,
    ConsumerCreation,
    ProducerCreation,
    SchemaAttachment,
    SchemaCreation,
    SchemaDetachment,
    SchemaUpdate,
    StationCreation,
    StationDestruction,
    admin_subject,
    configurations_update,
    configurations_update_subject,
    consumer_creation_reply,
    durable_name,
    final_subject,
    internal_name,
    notification_queue_group,
    producer_creation_error,
    producer_creation_reply,
    request_queue_group,
    schema_creation_reply,
    schema_updates_subject,
)
from .base import (
    ADMIN_PREFIX,
    MAX_PARTITIONS,
    MS,
    TENANT_SUFFIX,
    ControlPlaneConfig,
    ReplyError,
    Request,
)
from .connections import ConnectionTracker
from .dls import DeadLetterStation
from .jsapi import REPLICAS_NOT_SUPPORTED, STREAM_NAME_IN_USE, JsApi, JsApiError
from .models import (
    Consumer,
    Producer,
    Schema,
    SchemaVersion,
    Station,
    to_dict,
)
from .names import NameError_, kv_key, stream_name, validate_name
from .schemas import SchemaInvalid, compile_schema
from .store import MetadataStore

__all__ = ["ADMIN_PREFIX", "ControlPlane", "ControlPlaneConfig"]

log = logging.getLogger("memphis_fast.broker")

Handler = Callable[[Request, Msg], Awaitable[bytes]]
_Reg = TypeVar("_Reg", Producer, Consumer)


class ControlPlane(DeadLetterStation):
    # ======================================================================================
    # lifecycle
    # ======================================================================================
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.failed = loop.create_future()
        self.nc = await self._connect(
            self.cfg.user, self.cfg.password, self.cfg.token, "memphis-fast control plane"
        )
        # A cluster that just became healthy may still refuse placements for a moment ("no
        # suitable peers for placement, peer offline") until the meta leader has every peer's
        # statistics: the start-up calls get a longer window than requests do.
        self.js = JsApi(self.nc, retry_for=30.0 if self.cfg.nodes > 1 else 0.0)
        self.store = MetadataStore(
            self.nc,
            self.js,
            storage=self.cfg.storage,
            replicas=self.cfg.internal_replicas,
            max_bytes=self.cfg.metadata_max_bytes,
            retry_for=self.cfg.retry_for,
        )
        await self.store.open()
        await self._load()
        await self._ensure_advisory_capture()
        await self._reconcile_jetstream()
        await self._subscribe()
        if self.cfg.sys_user is not None:
            self.sys_nc = await self._connect(
                self.cfg.sys_user, self.cfg.sys_password, None, "memphis-fast control plane (system)"
            )
            self.tracker = ConnectionTracker(
                self._on_connection_change,
                sys_nc=self.sys_nc,
                account=self.cfg.account,
                on_snapshot=self._on_connection_snapshot,
                servers=self.cfg.nodes,
            )
        elif self.cfg.connz_url is not None:
            self.tracker = ConnectionTracker(
                self._on_connection_change,
                connz_url=self.cfg.connz_url,
                poll_interval=self.cfg.connection_poll_interval,
                on_snapshot=self._on_connection_snapshot,
            )
        if self.tracker is not None:
            await self.tracker.start()
        self._mark_dead_registrations()
        for coro, task_name in ((self._advisory_loop(), "poison-advisories"), (self._gc_loop(), "gc")):
            task = asyncio.create_task(coro, name=task_name)
            task.add_done_callback(self._background_done)
            self._background.append(task)
        await self._confirm_subscriptions()
        self.js.retry_for = self.cfg.retry_for
        log.info(
            "control plane ready: %d stations, %d schemas, %d DLS records",
            len(self.stations),
            len(self.schemas),
            len(self.dls),
        )

    async def _confirm_subscriptions(self) -> None:
        """Only report ready once nats-server has our subscriptions: nats-py's flush() writes
        its PING ahead of commands still in its pending buffer, so a PONG proves nothing. A
        request to a subscription made last goes out after every SUB, in order, so its reply
        does."""
        subject = f"{ADMIN_PREFIX}_ready.{secrets.token_hex(8)}"

        async def echo(msg: Msg) -> None:
            await msg.respond(b"ok")

        nc = self.nc
        assert nc is not None
        sub = await nc.subscribe(subject, cb=echo)
        try:
            await nc.request(subject, b"", timeout=10)
        finally:
            await sub.unsubscribe()

    async def _connect(self, user: str | None, password: str | None, token: str | None, name: str) -> NATS:
        async def error_cb(exc: Exception) -> None:
            if not self._stopping:
                log.debug("control plane connection error: %s", exc)

        async def closed_cb() -> None:
            if not self._stopping and self.failed is not None and not self.failed.done():
                self.failed.set_exception(
                    RuntimeError("the control plane lost its connection to nats-server")
                )

        opts: dict[str, Any] = {
            "servers": self.cfg.servers or [self.cfg.url],
            "name": name,
            "allow_reconnect": True,
            # A cluster's supervisor restarts a node that died; until then the connection moves
            # to the others, so it never gives up there.
            "max_reconnect_attempts": -1 if self.cfg.nodes > 1 else 60,
            "reconnect_time_wait": 0.25,
            "connect_timeout": 5,
            "error_cb": error_cb,
            "closed_cb": closed_cb,
            "pending_size": 64 * 1024 * 1024,
        }
        if user is not None:
            opts["user"] = user
            opts["password"] = password or ""
        if token is not None:
            opts["token"] = token
        if self.cfg.tls is not None:
            opts["tls"] = self.cfg.tls
        return await nats.connect(**opts)

    async def stop(self) -> None:
        self._stopping = True
        if self.tracker is not None:
            await self.tracker.stop()
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self.store is not None:
            await self.store.close()
        for nc in (self.nc, self.sys_nc):
            if nc is not None and not nc.is_closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(nc.close(), timeout=5)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        """A background loop must never end on its own: report it instead of running on crippled."""
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if self.failed is not None and not self.failed.done():
            self.failed.set_exception(RuntimeError(f"the {task.get_name()} task stopped: {exc!r}"))

    # ======================================================================================
    # start-up reconciliation
    # ======================================================================================
    async def _reconcile_jetstream(self) -> None:
        """Recreate what a restart lost: memory-storage streams and their groups' durables."""
        for st in list(self.stations.values()):
            recreated = False
            for p in st.partitions:
                if await self._js.stream_info(stream_name(st.name, p)) is None:
                    try:
                        await self._js.stream_create(self._stream_config(st, p))
                        recreated = True
                    except JsApiError as exc:
                        log.error("cannot recreate stream %s: %s", stream_name(st.name, p), exc.text)
            groups: dict[str, Consumer] = {}
            for c in self.consumers.values():
                if c.station == st.name:
                    groups[c.group] = c
            for c in groups.values():
                for p in st.partitions:
                    s = stream_name(st.name, p)
                    if await self._js.consumer_info(s, durable_name(c.group)) is None:
                        with contextlib.suppress(JsApiError):
                            await self._js.consumer_create(s, await self._durable_config(st, p, c))
            if recreated:
                log.info("recreated the streams of station %s", st.name)

    def _mark_dead_registrations(self) -> None:
        """After a restart nobody is connected until clients reconnect: mark the rest inactive."""
        now = time.time()
        regs: list[Producer | Consumer] = [*self.producers.values(), *self.consumers.values()]
        for reg in regs:
            live = self.tracker is not None and self.tracker.is_live(reg.connection_id)
            if reg.active and not live:
                reg.active = False
                reg.disconnected_at = now
                self._save_registration(reg)

    # ======================================================================================
    # subscriptions
    # ======================================================================================
    async def _subscribe(self) -> None:
        requests: dict[str, tuple[Handler, str]] = {
            STATION_CREATIONS: (self.create_station, "text"),
            STATION_DESTRUCTIONS: (self.destroy_station, "text"),
            PRODUCER_CREATIONS: (self.create_producer, "producer"),
            PRODUCER_DESTRUCTIONS: (self.destroy_producer, "text"),
            CONSUMER_CREATIONS: (self.create_consumer, "text"),
            CONSUMER_DESTRUCTIONS: (self.destroy_consumer, "text"),
            SCHEMA_CREATIONS: (self.create_schema, "schema"),
            SCHEMA_ATTACHMENTS: (self.attach_schema, "text"),
            SCHEMA_DETACHMENTS: (self.detach_schema, "text"),
        }
        for subject, (handler, fmt) in requests.items():
            self._subs.append(
                await self._nc.subscribe(
                    subject, queue=request_queue_group(subject), cb=self._request_cb(handler, fmt)
                )
            )
        notifications: dict[str, Callable[[Request], Awaitable[None]]] = {
            SCHEMAVERSE_DLS: self.on_schemaverse_dls,
            NACKED_DLS: self.on_nacked_dls,
            PM_ACKS: self.on_pm_ack,
            NOTIFICATIONS: self.on_notification,
        }
        for subject, note_handler in notifications.items():
            self._subs.append(
                await self._nc.subscribe(
                    subject, queue=notification_queue_group(subject), cb=self._notification_cb(note_handler)
                )
            )
        self._subs.append(
            await self._nc.subscribe(admin_subject(">"), queue=f"{ADMIN_PREFIX}_group", cb=self._admin_cb)
        )

    def _request_cb(self, handler: Handler, fmt: str) -> Callable[[Msg], Awaitable[None]]:
        async def cb(msg: Msg) -> None:
            self._spawn(self._serve(msg, handler, fmt))

        return cb

    async def _serve(self, msg: Msg, handler: Handler, fmt: str) -> None:
        try:
            body = await handler(Request(msg.data), msg)
        except (ReplyError, NameError_, SchemaInvalid) as exc:
            body = self._error_body(fmt, str(exc))
        except JsApiError as exc:
            body = self._error_body(fmt, exc.text)
        except (NatsTimeoutError, NoRespondersError, TimeoutError) as exc:
            # A cluster that lost a node answers again once its leaders are elected again.
            log.warning("request on %s: JetStream did not answer (%s)", msg.subject, type(exc).__name__)
            body = self._error_body(
                fmt,
                "JetStream did not answer in time (a node is down or a leader is being elected); try again",
            )
        except Exception as exc:
            log.exception("request on %s failed", msg.subject)
            body = self._error_body(fmt, f"internal error: {exc}")
        if msg.reply:
            with contextlib.suppress(Exception):
                await self._nc.publish(msg.reply, body)

    @staticmethod
    def _error_body(fmt: str, text: str) -> bytes:
        if fmt == "producer":
            return producer_creation_error(text)
        if fmt == "schema":
            return schema_creation_reply(text)
        return text.encode()

    def _notification_cb(
        self, handler: Callable[[Request], Awaitable[None]]
    ) -> Callable[[Msg], Awaitable[None]]:
        async def run(msg: Msg) -> None:
            try:
                await handler(Request(msg.data))
            except (ReplyError, NameError_) as exc:
                log.warning("ignoring %s: %s", msg.subject, exc)
            except Exception:
                log.exception("handling %s failed", msg.subject)

        async def cb(msg: Msg) -> None:
            self._spawn(run(msg))

        return cb

    # ======================================================================================
    # helpers
    # ======================================================================================
    def _user(self, username: str) -> str | None:
        """A request's user (lower case, tenant suffix stripped), or None if unknown."""
        name = TENANT_SUFFIX.sub("", username.lower())
        return name if self.cfg.users.get(name) in ("root", "application") else None

    async def _durable_config(self, st: Station, partition: int, c: Consumer) -> dict[str, Any]:
        """docs/protocol.md §6.3, including the deliver policy table."""
        s = stream_name(st.name, partition)
        config: dict[str, Any] = {
            "durable_name": durable_name(c.group),
            "ack_policy": "explicit",
            "ack_wait": c.max_ack_time_ms * MS,
            "max_deliver": c.max_msg_deliveries,
            "filter_subject": final_subject(s),
            "replay_policy": "instant",
            "max_ack_pending": -1,
            "headers_only": False,
        }
        if c.last_messages == 0 and c.start_consume_from_sequence == 1:
            config["deliver_policy"] = "new"
        elif c.last_messages > 0:
            info = await self._js.stream_info(s)
            last_seq = int(((info or {}).get("state") or {}).get("last_seq", 0))
            config["deliver_policy"] = "by_start_sequence"
            config["opt_start_seq"] = max(1, last_seq - c.last_messages + 1)
        elif c.start_consume_from_sequence > 1:
            config["deliver_policy"] = "by_start_sequence"
            config["opt_start_seq"] = c.start_consume_from_sequence
        else:
            config["deliver_policy"] = "all"
        return config

    async def _broadcast_schema(self, st: Station) -> None:
        update = SchemaUpdate.for_schema(self.schema_update(st))
        await self._nc.publish(schema_updates_subject(st.name), update.to_json())

    def _registration_active(self, conn_id: str) -> bool:
        return not (self.tracker is not None and conn_id and self.tracker.is_known_dead(conn_id))

    # ======================================================================================
    # stations (§5.1, §5.2, §6.1, §6.2)
    # ======================================================================================
    async def create_station(self, req: Request, msg: Msg | None = None) -> bytes:
        body = StationCreation.from_fields(req)
        name = validate_name(body.name, "Station")
        username = self._user(body.username)
        if username is None:
            raise ReplyError(f"User {body.username} does not exist")
        async with self._lock(name):
            if name in self.stations:
                return b""  # §5.1: an existing station is a success, options not compared
            st = Station(name=name, created_by=username)
            rtype = body.retention_type.lower()
            rvalue = body.retention_value
            if rtype == "":
                rtype, rvalue = "message_age_sec", 3600
            if rtype not in ("message_age_sec", "messages", "bytes", "ack_based"):
                raise ReplyError(
                    "retention type can be one of the following message_age_sec/messages/bytes/ack_based"
                )
            if rvalue <= 0 and rtype != "ack_based":
                rtype, rvalue = "message_age_sec", 3600
            st.retention_type, st.retention_value = rtype, rvalue if rtype != "ack_based" else 0
            storage = body.storage_type.lower() or "file"
            if storage not in ("file", "memory"):
                raise ReplyError("storage type can be one of the following file/memory")
            st.storage_type = storage
            replicas = body.replicas
            st.replicas = 1 if replicas <= 0 else 3 if replicas in (2, 4) else 5 if replicas > 5 else replicas
            if self.cfg.nodes > 1 and st.replicas > self.cfg.nodes:
                # JetStream would answer "no suitable peers", which is also what a node that is
                # down for a moment causes; the cluster size is known here, so say it at once.
                raise ReplyError(
                    "station can not be created, probably since replicas count is larger than the cluster size"
                )
            window = body.idempotency_window_in_ms
            if window <= 0:
                window = 120000
            elif window < 100:
                window = 100
            if window > 86_400_000:
                raise ReplyError("idempotency window can not exceed 24 hours")
            if rtype == "message_age_sec" and rvalue * 1000 < window:
                raise ReplyError("idempotency window cannot be greater than the station retention")
            st.idempotency_window_ms = window
            partitions = body.partitions_number
            if partitions == 0:
                raise ReplyError("you are using an old SDK, make sure to update your SDK")
            if partitions < 0 or partitions > MAX_PARTITIONS:
                # The upper bound is the cloud's; enforced here so one request cannot create
                # millions of streams.
                raise ReplyError(
                    f"cannot create station with {partitions} partitions (max:{MAX_PARTITIONS} min:1): "
                    f"Station -  {name}, "
                )
            st.partitions = list(range(1, partitions + 1))
            st.dls_poison = body.dls_poison
            st.dls_schemaverse = body.dls_schemaverse  # Python sends "Schemaverse"
            st.tiered_storage_enabled = body.tiered_storage_enabled
            schema_name = body.schema_name.lower()
            if schema_name:
                sc = self.schemas.get(schema_name)
                active = sc.active() if sc is not None else None
                if sc is None or active is None:
                    # The real broker replies empty without creating anything here (§13.4);
                    # docs/protocol.md recommends the error.
                    raise ReplyError(f"Schema {schema_name} does not exist")
                st.schema_name, st.schema_version = sc.name, active.number
            dls_station = body.dls_station
            if dls_station:
                st.dls_station = validate_name(dls_station, "Station")
            await self._create_streams(st)
            self.stations[name] = st
            await self._save_station(st)
        if st.dls_station and st.dls_station != name:
            await self._ensure_station(st.dls_station, username)
        log.info("station %s created (%d partitions)", name, len(st.partitions))
        return b""

    async def _create_streams(self, st: Station) -> None:
        created: list[str] = []
        try:
            for p in st.partitions:
                config = self._stream_config(st, p)
                try:
                    await self._js.stream_create(config)
                except JsApiError as exc:
                    if exc.err_code != STREAM_NAME_IN_USE:
                        raise
                    # Left by a creation that failed after its stream was made (an answer lost
                    # in a failover, a metadata write that did not get through): the station is
                    # not registered, so its stream takes this request's configuration.
                    log.warning("stream %s exists without its station; updating it", config["name"])
                    await self._js.stream_update(config)
                created.append(config["name"])
        except JsApiError as exc:
            for s in created:
                with contextlib.suppress(Exception):
                    await self._js.stream_delete(s)
            if exc.err_code == REPLICAS_NOT_SUPPORTED or "replicas" in exc.description.lower():
                raise ReplyError(
                    "station can not be created, probably since replicas count is larger than the cluster size"
                ) from exc
            raise ReplyError(exc.text) from exc

    async def _ensure_station(self, name: str, username: str) -> Station:
        """Create a station with the defaults of §6.2 unless it exists."""
        async with self._lock(name):
            st = self.stations.get(name)
            if st is not None:
                return st
            st = Station(name=name, created_by=username)
            await self._create_streams(st)
            self.stations[name] = st
            await self._save_station(st)
            log.info("station %s created with default settings", name)
            return st

    async def destroy_station(self, req: Request, msg: Msg | None = None) -> bytes:
        name = validate_name(StationDestruction.from_fields(req).station_name, "Station")
        if not await self._remove_station(name):
            # The broker's text, two spaces included (it prints the name of an empty record).
            raise ReplyError("Station  does not exist")
        return b""

    async def _remove_station(self, name: str) -> bool:
        async with self._lock(name):
            st = self.stations.get(name)
            if st is None:
                return False
            for p in st.partitions:
                await self._js.stream_delete(stream_name(name, p))
            del self.stations[name]
            writes = [self._store.delete(kv_key("station", name))]
            writes += [self._delete_producer(p) for p in list(self.producers.values()) if p.station == name]
            writes += [self._delete_consumer(c) for c in list(self.consumers.values()) if c.station == name]
            writes += [self._delete_dls(r) for r in list(self.dls.values()) if r.station == name]
            for other in self.stations.values():
                if other.dls_station == name:
                    other.dls_station = ""
                    writes.append(self._save_station(other))
            await asyncio.gather(*writes)
        log.info("station %s destroyed", name)
        return True

    # ======================================================================================
    # producers (§5.3, §5.4)
    # ======================================================================================
    async def create_producer(self, req: Request, msg: Msg | None = None) -> bytes:
        body = ProducerCreation.from_fields(req)
        name = validate_name(body.name, "Producer")
        station_name = validate_name(body.station_name, "Station")
        ptype = body.producer_type.lower() or "application"
        if ptype not in ("application", "connector"):
            raise ReplyError("producer type has to be one of the following application/connector")
        version = body.req_version
        username = self._user(body.username)
        if username is None:
            raise ReplyError(f"User {body.username} does not exist")
        st = self.stations.get(station_name)
        if st is None:
            if version < 2:
                raise ReplyError(
                    "this station does not exist, a default station can not be created automatically, "
                    "please upgrade your SDK version"
                )
            st = await self._ensure_station(station_name, username)
        elif version < 2 and len(st.partitions) > 1:
            raise ReplyError("to produce to this station please upgrade your SDK version")
        conn_id = body.connection_id
        producer = Producer(
            id=uuid.uuid4().hex,
            name=name,
            station=station_name,
            connection_id=conn_id,
            type=ptype,
            username=username,
            app_id=body.app_id if version >= 4 else conn_id,
            sdk=body.sdk_lang if version >= 4 else "",
            req_version=version,
            active=self._registration_active(conn_id),
        )
        self.producers[producer.id] = producer
        await self._save_producer(producer)
        return producer_creation_reply(
            schema_update=self.schema_update(st),
            partitions=st.partitions,
            schemaverse_to_dls=st.dls_schemaverse,
            send_notification=self.send_notifications,
            station_version=st.version,
        )

    async def destroy_producer(self, req: Request, msg: Msg | None = None) -> bytes:
        matches = self._destroy_targets(ClientDestruction.from_fields(req), self.producers, "Producer")
        await asyncio.gather(*(self._delete_producer(p) for p in matches))
        return b""

    @staticmethod
    def _destroy_targets(req: ClientDestruction, registry: Mapping[str, _Reg], kind: str) -> list[_Reg]:
        """The registrations a destroy request names (§5.4, §5.6): by name and
        station, and with ``req_version >= 1`` only those of the requesting connection."""
        raw_name = req.name
        raw_station = req.station_name
        station_name = validate_name(raw_station, "Station")
        name = raw_name.lower()
        conn_id = req.connection_id
        by_connection = req.req_version >= 1 and conn_id != ""
        matches = [
            r
            for r in registry.values()
            if r.name == name
            and r.station == station_name
            and (not by_connection or r.connection_id == conn_id)
        ]
        if not matches:
            raise ReplyError(f"{kind} {raw_name} at station {raw_station} does not exist")
        return matches

    # ======================================================================================
    # consumers (§5.5, §5.6, §6.3)
    # ======================================================================================
    async def create_consumer(self, req: Request, msg: Msg | None = None) -> bytes:
        body = ConsumerCreation.from_fields(req)
        name = validate_name(body.name, "Consumer")
        station_name = validate_name(body.station_name, "Station")
        ctype = body.consumer_type.lower() or "application"
        if ctype not in ("application", "connector"):
            raise ReplyError(
                f"consumer type has to be one of the following application/connector and not {ctype}"
            )
        group_raw = body.consumers_group
        group = validate_name(group_raw, "Consumer") if group_raw else name
        max_ack = body.max_ack_time_ms
        if max_ack <= 0:
            max_ack = 30000
        max_deliveries = body.max_msg_deliveries
        if max_deliveries <= 0 or max_deliveries > 10:
            max_deliveries = 10
        start = body.start_consume_from_sequence
        last = body.last_messages
        if start <= 0:
            raise ReplyError("startConsumeFromSequence has to be a positive number")
        if last < -1:
            raise ReplyError("min value for LastMessages is -1")
        if start > 1 and last > -1:
            raise ReplyError(
                "consumer creation options can't contain both startConsumeFromSequence and lastMessages"
            )
        version = body.req_version
        username = self._user(body.username)
        if username is None:
            raise ReplyError("user does not exist")
        st = self.stations.get(station_name)
        if st is None:
            if version < 2:
                raise ReplyError(
                    "this station does not exist, a default station can not be created automatically, "
                    "please upgrade your SDK version"
                )
            st = await self._ensure_station(station_name, username)
        conn_id = body.connection_id
        consumer = Consumer(
            id=uuid.uuid4().hex,
            name=name,
            group=group,
            station=station_name,
            connection_id=conn_id,
            type=ctype,
            max_ack_time_ms=max_ack,
            max_msg_deliveries=max_deliveries,
            start_consume_from_sequence=start,
            last_messages=last,
            partitions=list(st.partitions),
            username=username,
            app_id=body.app_id if version >= 4 else conn_id,
            sdk=body.sdk_lang if version >= 4 else "",
            req_version=version,
            active=self._registration_active(conn_id),
        )
        async with self._lock(station_name):
            st = self.stations.get(station_name)
            if st is None:
                raise ReplyError(f"Station {station_name} does not exist")
            member = next(
                (
                    c
                    for c in self.consumers.values()
                    if c.station == station_name and c.group == group and c.active
                ),
                None,
            )
            if member is not None:
                if member.max_ack_time_ms != max_ack or member.max_msg_deliveries != max_deliveries:
                    await self._update_durables(st, consumer)
            else:
                await self._create_durables(st, consumer)
            self.consumers[consumer.id] = consumer
            await self._save_consumer(consumer)
        return consumer_creation_reply(schema_update=self.schema_update(st), partitions=st.partitions)

    async def _create_durables(self, st: Station, c: Consumer) -> None:
        for p in st.partitions:
            s = stream_name(st.name, p)
            existing = await self._js.consumer_info(s, durable_name(c.group))
            if existing is not None:
                # The group's durable outlived its members (they disconnected without
                # destroying). Keep its position and update only what JetStream can edit,
                # instead of failing on a start position that cannot change (§13.18).
                await self._update_durable(s, existing, c)
            else:
                await self._js.consumer_create(s, await self._durable_config(st, p, c))

    async def _update_durables(self, st: Station, c: Consumer) -> None:
        for p in st.partitions:
            s = stream_name(st.name, p)
            existing = await self._js.consumer_info(s, durable_name(c.group))
            if existing is None:
                await self._js.consumer_create(s, await self._durable_config(st, p, c))
            else:
                await self._update_durable(s, existing, c)

    async def _update_durable(self, stream: str, info: dict[str, Any], c: Consumer) -> None:
        config = dict(info.get("config") or {})
        if (
            config.get("ack_wait") == c.max_ack_time_ms * MS
            and config.get("max_deliver") == c.max_msg_deliveries
        ):
            return
        config["ack_wait"] = c.max_ack_time_ms * MS
        config["max_deliver"] = c.max_msg_deliveries
        config["durable_name"] = durable_name(c.group)
        await self._js.consumer_create(stream, config)

    async def destroy_consumer(self, req: Request, msg: Msg | None = None) -> bytes:
        body = ClientDestruction.from_fields(req)
        station_name = validate_name(body.station_name, "Station")
        async with self._lock(station_name):
            matches = self._destroy_targets(body, self.consumers, "Consumer")
            await asyncio.gather(*(self._delete_consumer(c) for c in matches))
            for group in {c.group for c in matches}:
                await self._maybe_drop_group(station_name, group, only_active=True)
        return b""

    async def _maybe_drop_group(self, station: str, group: str, *, only_active: bool) -> None:
        """Delete a group's durables once no (active) member is left (§5.6)."""
        remaining = [
            c
            for c in self.consumers.values()
            if c.station == station and c.group == group and (c.active or not only_active)
        ]
        if remaining:
            return
        st = self.stations.get(station)
        if st is not None:
            for p in st.partitions:
                await self._js.consumer_delete(stream_name(station, p), durable_name(group))
        async with self._dls_lock:
            for rec in list(self.dls.values()):
                if rec.station == station and group in rec.group_names():
                    rec.poisoned_cgs = [g for g in rec.poisoned_cgs if g.name != group]
                    self._save_or_drop_dls(rec)
        log.info("consumer group %s of station %s removed", group, station)

    # ======================================================================================
    # connection tracking (§2.9)
    # ======================================================================================
    def _on_connection_change(self, conn_id: str, alive: bool) -> None:
        now = time.time()
        regs: list[Producer | Consumer] = [*self.producers.values(), *self.consumers.values()]
        for reg in regs:
            if reg.connection_id == conn_id and reg.active != alive:
                reg.active = alive
                reg.disconnected_at = None if alive else now
                self._save_registration(reg)
        if alive and self.nc is not None:
            # §5.18: current clients ignore it; sent for fidelity.
            self._spawn(
                self._nc.publish(
                    configurations_update_subject(conn_id), configurations_update(self.send_notifications)
                )
            )

    def _on_connection_snapshot(self, live: set[str], started: float) -> None:
        """Zombies (§2.9): a registration made before a connection snapshot was requested whose
        connection is not in it has lost its client, even if the tracker never saw that
        connection (a short-lived client between two /connz polls)."""
        now = time.time()
        regs: list[Producer | Consumer] = [*self.producers.values(), *self.consumers.values()]
        for reg in regs:
            if reg.active and reg.created_at < started and reg.connection_id not in live:
                reg.active, reg.disconnected_at = False, now
                self._save_registration(reg)

    async def _gc_loop(self) -> None:
        interval = max(0.2, min(30.0, self.cfg.inactive_ttl / 2, self.cfg.dls_retention / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                await self._gc()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("garbage collection failed")

    async def _gc(self) -> None:
        now = time.time()
        if await self._js.consumer_info(DLS_UNACKED_STREAM, DLS_UNACKED_CONSUMER) is None:
            log.warning("the poison-advisory capture was deleted; recreating it")
            await self._ensure_advisory_capture()
        expired: dict[tuple[str, str], None] = {}
        for p in list(self.producers.values()):
            if (
                not p.active
                and p.disconnected_at is not None
                and now - p.disconnected_at >= self.cfg.inactive_ttl
            ):
                self._delete_producer(p)
        for c in list(self.consumers.values()):
            if (
                not c.active
                and c.disconnected_at is not None
                and now - c.disconnected_at >= self.cfg.inactive_ttl
            ):
                self._delete_consumer(c)
                expired[(c.station, c.group)] = None
        for station, group in expired:
            # The members of this group all went away without destroying their consumers:
            # once the last registration expires the group is dropped, so a crashed client
            # never pins a group forever.
            async with self._lock(station):
                await self._maybe_drop_group(station, group, only_active=False)
        async with self._dls_lock:
            for rec in list(self.dls.values()):
                if now - rec.created_at >= self.cfg.dls_retention:
                    self._delete_dls(rec)

    # ======================================================================================
    # schemas (§5.7 - §5.10)
    # ======================================================================================
    async def create_schema(self, req: Request, msg: Msg | None = None) -> bytes:
        body = SchemaCreation.from_fields(req)
        name = body.name
        schema_type = body.schema_type
        content = body.schema_content
        username = body.created_by_username or "root"
        if name == "":
            raise ReplyError("Schema name can not be empty")
        if any(ch in name for ch in "/\\\x00"):
            # Not validated by the real broker; refused here because the name becomes a file name.
            raise ReplyError("Only alphanumeric and the '_', '-', '.' characters are allowed in Schema")
        async with self._lock(f"schema:{name}"):
            existing = self.schemas.get(name)
            if existing is None:
                struct, descriptor = await compile_schema(schema_type, content, name, 1)
                sc = Schema(name=name, type=schema_type, created_by=username)
                sc.versions.append(SchemaVersion(1, True, content, struct, descriptor, created_by=username))
                self.schemas[name] = sc
                await self._save_schema(sc)
                log.info("schema %s (%s) created", name, schema_type)
                return schema_creation_reply()
            latest = existing.latest()
            number = (latest.number if latest else 0) + 1
            struct, descriptor = await compile_schema(schema_type, content, name, number)
            if existing.type != schema_type:
                raise ReplyError(f"{name} already exist with type - {existing.type}")
            if latest is not None and latest.content == content:
                raise ReplyError(f"{name} already exists in the db with the same schema content")
            # SDK-created versions are inactive; an operator activates them (schema activate).
            existing.versions.append(
                SchemaVersion(number, False, content, struct, descriptor, created_by=username)
            )
            await self._save_schema(existing)
            log.info("schema %s: version %d created (inactive)", name, number)
        return schema_creation_reply()

    async def attach_schema(self, req: Request, msg: Msg | None = None) -> bytes:
        body = SchemaAttachment.from_fields(req)
        schema_name = body.name.lower()
        station_name = validate_name(body.station_name, "Station")
        async with self._lock(station_name):
            st = self.stations.get(station_name)
            if st is None:
                raise ReplyError(f"memphis: Station {station_name} does not exist")
            sc = self.schemas.get(schema_name)
            active = sc.active() if sc is not None else None
            if sc is None or active is None:
                raise ReplyError(f"Schema {schema_name} does not exist")
            st.schema_name, st.schema_version = sc.name, active.number
            await self._save_station(st)
            await self._broadcast_schema(st)
        return b""

    async def detach_schema(self, req: Request, msg: Msg | None = None) -> bytes:
        station_name = validate_name(SchemaDetachment.from_fields(req).station_name, "Station")
        async with self._lock(station_name):
            st = self.stations.get(station_name)
            if st is None:
                raise ReplyError(f"station {station_name} does not exist")
            st.schema_name, st.schema_version = "", 0
            await self._save_station(st)
            await self._broadcast_schema(st)
        return b""

    # ======================================================================================
    # operator (admin) requests: what the real broker does through its UI
    # ======================================================================================
    async def _admin_cb(self, msg: Msg) -> None:
        self._spawn(self._admin(msg))

    async def _admin(self, msg: Msg) -> None:
        op = msg.subject[len(ADMIN_PREFIX) + 1 :]
        try:
            req = Request(msg.data)
            result = await self._admin_op(op, req)
            result.setdefault("error", "")
        except (ReplyError, NameError_, SchemaInvalid) as exc:
            result = {"error": str(exc)}
        except JsApiError as exc:
            result = {"error": exc.text}
        except Exception as exc:
            log.exception("admin request %s failed", op)
            result = {"error": f"internal error: {exc}"}
        if msg.reply:
            await self._nc.publish(msg.reply, json.dumps(result).encode())

    async def _admin_op(self, op: str, req: Request) -> dict[str, Any]:
        if op == "ping":
            return {"pong": True, "stations": len(self.stations)}
        if op == "stations.list":
            return {"stations": [to_dict(s) for s in sorted(self.stations.values(), key=lambda s: s.name)]}
        if op == "station.delete":
            # The UI path: like a station destruction plus a remove_station broadcast (§5.11).
            name = validate_name(req.get_str("name"), "Station")
            if not await self._remove_station(name):
                raise ReplyError(f"Station {name} does not exist")
            await self._sdk_update(UPDATE_REMOVE_STATION, internal_name(name), None)
            return {}
        if op == "station.dls_config":
            name = validate_name(req.get_str("name"), "Station")
            async with self._lock(name):
                st = self.stations.get(name)
                if st is None:
                    raise ReplyError(f"Station {name} does not exist")
                if req.get("poison") is not None:
                    st.dls_poison = req.get_bool("poison")
                if req.get("schemaverse") is not None:
                    st.dls_schemaverse = req.get_bool("schemaverse")
                await self._save_station(st)
            # The real broker broadcasts the previous value (§13.8); this sends the new one.
            await self._sdk_update(UPDATE_SCHEMAVERSE_TO_DLS, internal_name(name), st.dls_schemaverse)
            return {"station": to_dict(st)}
        if op == "schemas.list":
            return {"schemas": [to_dict(s) for s in sorted(self.schemas.values(), key=lambda s: s.name)]}
        if op == "schema.activate":
            return await self._activate_schema(req.get_str("name"), req.get_int("version", 0))
        if op == "schema.delete":
            return await self._delete_schema(req.get_str("name"))
        if op == "dls.list":
            station = req.get_str("station")
            name = validate_name(station, "Station") if station else ""
            records = [
                r.public()
                for r in sorted(self.dls.values(), key=lambda r: r.id)
                if (not name or r.station == name)
                and (not req.get_str("type") or r.type == req.get_str("type"))
            ]
            return {"messages": records}
        if op == "dls.resend":
            ids = req.get("ids")
            if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, int) for i in ids)):
                raise ReplyError("ids must be a list of integers")
            return {"resent": await self.resend_dls(req.get_str("station"), ids)}
        if op == "dls.drop":
            ids = req.get("ids")
            station = validate_name(req.get_str("station"), "Station")
            async with self._dls_lock:
                doomed = [
                    r for r in self.dls.values() if r.station == station and (ids is None or r.id in ids)
                ]
                await asyncio.gather(*(self._delete_dls(r) for r in doomed))
            return {"dropped": len(doomed)}
        if op == "clients.list":
            station = req.get_str("station").lower()
            return {
                "producers": [
                    to_dict(p) for p in self.producers.values() if not station or p.station == station
                ],
                "consumers": [
                    to_dict(c) for c in self.consumers.values() if not station or c.station == station
                ],
                "connections": self.tracker.live_ids() if self.tracker is not None else [],
            }
        if op == "notifications.set":
            self.send_notifications = req.get_bool("enabled")
            await self._save_settings()
            await self._sdk_update(UPDATE_SEND_NOTIFICATION, "", self.send_notifications)
            return {"enabled": self.send_notifications}
        if op == "notifications.list":
            return {"notifications": list(self.notifications), "enabled": self.send_notifications}
        raise ReplyError(f"unknown operation {op}")

    async def _activate_schema(self, name: str, number: int) -> dict[str, Any]:
        """The UI's version roll-back/forward; here it also broadcasts to the attached stations."""
        async with self._lock(f"schema:{name}"):
            sc = self.schemas.get(name)
            if sc is None:
                raise ReplyError(f"Schema {name} does not exist")
            target = sc.version(number)
            if target is None:
                raise ReplyError(f"Schema {name} has no version {number}")
            for v in sc.versions:
                v.active = v.number == number
            await self._save_schema(sc)
        attached = [st for st in self.stations.values() if st.schema_name == sc.name]
        for st in attached:
            st.schema_version = number
            await self._save_station(st)
            await self._broadcast_schema(st)
        return {"schema": to_dict(sc), "stations": [st.name for st in attached]}

    async def _delete_schema(self, name: str) -> dict[str, Any]:
        """The UI's schema deletion: detaches it from every station (drop broadcasts)."""
        async with self._lock(f"schema:{name}"):
            sc = self.schemas.pop(name, None)
            if sc is None:
                raise ReplyError(f"Schema {name} does not exist")
            await self._store.delete(kv_key("schema", name))
        detached = []
        for st in list(self.stations.values()):
            if st.schema_name == name:
                st.schema_name, st.schema_version = "", 0
                await self._save_station(st)
                await self._broadcast_schema(st)
                detached.append(st.name)
        return {"stations": detached}
