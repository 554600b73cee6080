"""The dead-letter station (docs/protocol.md §5.12 - §5.16, §9): poison messages, explicit dead-lettering,
schema-validation failures, ``dls_station`` forwarding, resending to groups, notifications."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from typing import Any

from nats.aio.msg import Msg

from .._subjects import (
    DLS_PRODUCER,
    DLS_TYPE_FAILED_SCHEMA,
    DLS_TYPE_UNACKED,
    DLS_UNACKED_CONSUMER,
    DLS_UNACKED_STREAM,
    HEADER_DLS_SOURCE_STATION,
    HEADER_DLS_TYPE,
    HEADER_LEGACY_PRODUCED_BY,
    HEADER_PM_CG_NAME,
    HEADER_PM_ID,
    HEADER_PRODUCED_BY,
    MAX_DELIVERIES_ADVISORY,
    NACKED_DLS,
    NackedDls,
    Notification,
    PmAck,
    SchemaverseDlsReport,
    dls_subject,
    final_subject,
    js_consumer_msg_next,
    legacy_dls_subject,
    partition_of_stream,
)
from .base import NS, ControlPlaneBase, ReplyError, Request
from .models import DlsRecord, PoisonedGroup, Station
from .names import external_name, stream_name, validate_name

__all__ = ["ADVISORY_CONSUMER", "ADVISORY_STREAM", "DeadLetterStation"]

log = logging.getLogger("memphis_fast.broker")

ADVISORY_STREAM = DLS_UNACKED_STREAM
ADVISORY_CONSUMER = DLS_UNACKED_CONSUMER
ADVISORY_SUBJECT = MAX_DELIVERIES_ADVISORY


class DeadLetterStation(ControlPlaneBase):
    async def _ensure_advisory_capture(self) -> None:
        """Capture max-deliveries advisories durably (§9.1), so none is lost while we are down."""
        if await self._js.stream_info(ADVISORY_STREAM) is None:
            await self._js.stream_create(
                {
                    "name": ADVISORY_STREAM,
                    "subjects": [ADVISORY_SUBJECT],
                    "retention": "workqueue",
                    "max_consumers": -1,
                    "max_msgs": -1,
                    "max_bytes": -1 if self.cfg.dls_max_bytes is None else self.cfg.dls_max_bytes,
                    "max_age": 24 * 3600 * NS,
                    "max_msgs_per_subject": -1,
                    "discard": "old",
                    "storage": self.cfg.storage,
                    "num_replicas": self.cfg.internal_replicas,
                    "duplicate_window": 120 * NS,
                }
            )
        if await self._js.consumer_info(ADVISORY_STREAM, ADVISORY_CONSUMER) is None:
            await self._js.consumer_create(
                ADVISORY_STREAM,
                {
                    "durable_name": ADVISORY_CONSUMER,
                    "deliver_policy": "all",
                    "ack_policy": "explicit",
                    "ack_wait": 80 * NS,
                    "max_deliver": 10,
                    "replay_policy": "instant",
                    "max_ack_pending": -1,
                },
            )

    async def _advisory_loop(self) -> None:
        inbox = self._nc.new_inbox()
        queue: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_msg(msg: Msg) -> None:
            queue.put_nowait(msg)

        sub = await self._nc.subscribe(inbox, cb=on_msg)
        api = js_consumer_msg_next(ADVISORY_STREAM, ADVISORY_CONSUMER)
        try:
            while True:
                # One long pull at a time; status messages (404/408) end it early.
                body = json.dumps({"batch": 1000, "expires": 2 * NS}).encode()
                await self._nc.publish(api, body, reply=inbox)
                deadline = time.monotonic() + 2.5
                while True:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        break
                    try:
                        msg = await asyncio.wait_for(queue.get(), timeout)
                    except TimeoutError:
                        break
                    status = (msg.headers or {}).get("Status")
                    if status is not None or not msg.data:
                        if status in ("404", "408", "409"):
                            description = (msg.headers or {}).get("Description", "")
                            if description not in ("No Messages", "Request Timeout"):
                                # The capture stream or its consumer was deleted: recreate them.
                                with contextlib.suppress(Exception):
                                    await self._ensure_advisory_capture()
                            break
                        continue
                    try:
                        await self._on_poison_advisory(json.loads(msg.data))
                    except Exception:
                        log.exception("poison advisory processing failed")
                    with contextlib.suppress(Exception):
                        await msg.ack()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _on_poison_advisory(self, adv: dict[str, Any]) -> None:
        """§9.2."""
        stream = str(adv.get("stream", ""))
        consumer = str(adv.get("consumer", ""))
        seq = int(adv.get("stream_seq", 0))
        parsed = partition_of_stream(stream)
        if parsed is None or stream.startswith("KV_"):
            return  # our own streams, or not a Memphis partition stream
        internal_station, partition = parsed
        station = external_name(internal_station)
        group = external_name(consumer)
        st = self.stations.get(station)
        if st is None or not st.dls_poison:
            return
        if not any(
            c.station == station and c.group == group and c.type == "application"
            for c in self.consumers.values()
        ):
            return
        stored = await self._js.msg_get(stream, seq=seq)
        if stored is None:
            return
        if stored.headers.get(HEADER_PRODUCED_BY) == DLS_PRODUCER:
            return  # a resent poison message poisoned again
        await self._add_poison(st, partition, stored.seq, group, "", stored)

    async def _add_poison(
        self, st: Station, partition: int, seq: int, group: str, reason: str, stored: Any
    ) -> None:
        async with self._dls_lock:
            rec_id = self._dls_index.get((st.name, partition, seq))
            rec = self.dls.get(rec_id) if rec_id is not None else None
            first = rec is None
            if rec is None:
                rec = DlsRecord(
                    id=self.next_dls_id,
                    station=st.name,
                    type="poison",
                    partition=partition,
                    seq=seq,
                    producer=stored.headers.get(HEADER_PRODUCED_BY, "unknown"),
                    data=stored.data.hex(),
                    headers=dict(stored.headers),
                    size=len(stored.data) + len(stored.raw_headers),
                    message_time=stored.time,
                )
                self.next_dls_id += 1
                self.dls[rec.id] = rec
                self._dls_index[(st.name, partition, seq)] = rec.id
                self._save_settings()
            if group in rec.group_names():
                if reason:
                    for g in rec.poisoned_cgs:
                        if g.name == group:
                            g.reason = reason
            else:
                rec.poisoned_cgs.append(PoisonedGroup(name=group, reason=reason))
            await self._save_dls(rec)
        log.info(
            "poison message %s of station %s (group %s) stored as DLS record %d", seq, st.name, group, rec.id
        )
        if first:
            await self._forward_to_dls_station(st, stored.data, stored.headers, DLS_TYPE_UNACKED)

    async def _forward_to_dls_station(
        self, st: Station, data: bytes, headers: dict[str, str], kind: str
    ) -> None:
        """§9.7."""
        if not st.dls_station:
            return
        target = self.stations.get(st.dls_station)
        if target is None:
            return
        # Any partition of the target; the real broker never picks the last one (§13.10).
        partition = random.choice(target.partitions)
        # JetStream control headers (Nats-Msg-Id, Nats-Expected-*) must not act on the copy.
        out = {k: v for k, v in headers.items() if not k.lower().startswith("nats-")}
        out[HEADER_DLS_SOURCE_STATION] = st.name
        out[HEADER_DLS_TYPE] = kind
        subject = final_subject(stream_name(target.name, partition))
        try:
            await self._nc.request(subject, data, timeout=5, headers=out)
        except Exception as exc:
            log.warning("forwarding a DLS message to station %s failed: %s", target.name, exc)

    async def on_nacked_dls(self, req: Request) -> None:
        """§5.14: explicit dead-lettering (after the client's +TERM)."""
        body = NackedDls.from_fields(req)
        partition, seq, group = body.partition, body.seq, body.cg_name.lower()
        if partition < 1 or seq < 1 or not group:
            log.warning(
                "ignoring %s with partition %s, seq %s, cg %r", NACKED_DLS, partition, seq, group
            )
            return
        st = self.stations.get(external_name(body.station_name.lower()))
        if st is None or not st.dls_poison:
            return
        stored = await self._js.msg_get(stream_name(st.name, partition), seq=seq)
        if stored is None:
            return
        await self._add_poison(st, partition, seq, group, body.error, stored)

    async def on_schemaverse_dls(self, req: Request) -> None:
        """§5.13: a producer's schema-validation failure."""
        report = SchemaverseDlsReport.from_fields(req)
        st = self.stations.get(external_name(report.station_name.lower()))
        if st is None:
            return
        data = report.data
        headers = dict(report.headers)
        async with self._dls_lock:
            rec = DlsRecord(
                id=self.next_dls_id,
                station=st.name,
                type="schema",
                partition=report.partition_number,
                producer=report.producer_name or "unknown",
                data=data.hex(),
                headers=headers,
                size=len(data) + sum(len(k) + len(v) for k, v in headers.items()),
                validation_error=report.validation_error,
            )
            self.next_dls_id += 1
            self.dls[rec.id] = rec
            self._save_settings()
            await self._save_dls(rec)
        log.info("schema validation failure on station %s stored as DLS record %d", st.name, rec.id)
        await self._forward_to_dls_station(st, data, headers, DLS_TYPE_FAILED_SCHEMA)

    async def on_pm_ack(self, req: Request) -> None:
        """§5.15: a resent poison message was acknowledged by its group."""
        ack = PmAck.from_fields(req)
        rec_id, group = ack.id, ack.cg_name.lower()
        async with self._dls_lock:
            rec = self.dls.get(rec_id)
            if rec is None or group not in rec.group_names():
                return
            rec.poisoned_cgs = [g for g in rec.poisoned_cgs if g.name != group]
            self._save_or_drop_dls(rec)

    async def on_notification(self, req: Request) -> None:
        """§5.12: no Slack here; the alert is logged and kept for ``notifications list``."""
        note: dict[str, Any] = {**Notification.from_fields(req).to_dict(), "time": time.time()}
        self.notifications.append(note)
        log.warning("notification: %s: %s", note["title"], note["msg"].replace("\n", " | "))

    async def resend_dls(self, station: str, ids: list[int] | None) -> int:
        """§5.16: publish poison records to each of their groups (the UI's "resend")."""
        name = validate_name(station, "Station")
        st = self.stations.get(name)
        if st is None:
            raise ReplyError(f"Station {name} does not exist")
        records = [
            r
            for r in sorted(self.dls.values(), key=lambda r: r.id)
            if r.station == name and r.type == "poison" and (ids is None or r.id in ids)
        ]
        sent = 0
        for rec in records:
            for group in rec.group_names():
                headers = {k: v for k, v in rec.headers.items() if k != HEADER_LEGACY_PRODUCED_BY}
                headers[HEADER_PRODUCED_BY] = DLS_PRODUCER
                headers[HEADER_PM_ID] = str(rec.id)
                headers[HEADER_PM_CG_NAME] = group
                data = bytes.fromhex(rec.data)
                await self._nc.publish(dls_subject(name, group), data, headers=headers)
                await self._nc.publish(legacy_dls_subject(name, group), data, headers=headers)
                sent += 1
        await self._nc.flush()
        return sent

    def _save_or_drop_dls(self, rec: DlsRecord) -> None:
        # A poison record that no group is waiting for any more has been dealt with.
        if rec.type == "poison" and not rec.poisoned_cgs:
            self._delete_dls(rec)
        else:
            self._save_dls(rec)
